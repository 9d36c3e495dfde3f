// Package fuzztest holds karat's fuzz targets (go test -fuzz) for the code
// that parses what a client or an operator sends: session tokens, key parts,
// the client IP behind X-Forwarded-For and Forwarded, the rate-limit
// headers karat writes, store URLs, and every JSON request body of the HTTP
// API. Each target's seed corpus is committed under testdata/fuzz, and
// every input a fuzzer found to fail stays there as a seed, so plain
// go test ./internal/fuzztest replays all of them. .ci/run fuzzes each
// target for a few seconds.
//
// The targets live here, importing the packages they fuzz, rather than next
// to that code, because those packages belong to other branches that had
// not reached main when this was written; move each next to its code once
// they have (the corpora move with them, under testdata/fuzz/<Target>).
//
// What each target asserts beyond "no panic":
//
//   - FuzzSessionToken: any string given to Validate is session.ErrNotFound
//     (never another error); a string that is not 64 lowercase hex
//     characters is refused without a store call (counted as malformed).
//   - FuzzNamespaceKey: every part list either builds a key under the
//     namespace that no other part list builds (checked against a second
//     list differing in one byte), or is refused with store.ErrInvalidKey.
//   - FuzzClientIP: the address found is the TCP peer unless the peer is
//     trusted, and is never an address absent from the request; a trusted
//     proxy's own address is never the client unless nothing else verifies.
//   - FuzzRateLimitHeaders: the RateLimit-Policy and RateLimit fields are
//     structured-field lists of the grammar the draft gives, with no byte
//     outside visible ASCII, whatever the policy's numbers.
//   - FuzzStoreURL: drivers.Open on any string returns an error of the
//     ErrBadURL class or a store (or an unavailable store), never a panic,
//     and no error message holds the URL's password.
//   - FuzzAPIBody: every JSON body on login, password reset and invoice
//     creation is answered below 500, with application/problem+json for
//     every 4xx.
package fuzztest
