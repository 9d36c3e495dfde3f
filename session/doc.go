// Package session keeps login sessions in a karat store: multi-device,
// hashed at rest, never resurrected, never silently overwritten, and
// validated without a round trip when the store has a client-side cache.
//
// Start with [New] (a store, the HMAC secrets, nil options), then
// [Manager.Create] at login, [Manager.Validate] on every request,
// [Manager.List] and [Manager.RevokeByID] / [Manager.RevokeOthers] /
// [Manager.RevokeAll] for a "your devices" page, [Manager.Rotate] on a
// change of privilege, [Manager.Update] for the app's data, and
// [Manager.Cleanup] and [Manager.Stats] from a ticker.
//
//	m, _ := session.New(s, [][]byte{secret}, nil)
//	token, _, _ := m.Create(ctx, userID, shopID, session.Meta{Device: "Firefox on the shop laptop", Data: perms})
//	sess, err := m.Validate(ctx, token) // session.ErrNotFound: log in again
//
// # Tokens and what the store holds
//
// A token is 32 bytes from crypto/rand written as 64 lowercase hex
// characters; anything else (empty, 63 or 65 characters, uppercase, 10 MB)
// is not found without a store call, and counted. The store never sees a
// token: keys use HMAC-SHA-256(secret, token bytes). Per session it holds
//
//   - a pointer, ns:{<hex HMAC>}:t → (session id, user), tagged by the HMAC
//     because validation knows only the token;
//   - the record, ns:{s<shard>}:r:<id>, a string (so that it can be read
//     through the client-side cache) holding the HMAC of its current token,
//     the previous one's with its grace deadline after a Rotate, a version,
//     created / last-seen / idle / absolute times, the metadata and the app's
//     data, in a compact length-prefixed encoding (internal/sessionrec)
//     parsed without JSON or copies;
//   - an entry in the user's index, ns:{s<shard>}:u:<user> (a hash: id →
//     deadline), and in the shard's live index, ns:{s<shard>}:live (id →
//     deadline and user), plus the shard's counters, ns:{s<shard>}:n.
//
// The public session id (16 random bytes in hex) is what List shows and
// RevokeByID takes; nothing stored or returned lets anyone derive a token.
//
// # Slots: users are spread over shards
//
// A user's record, index and the shard's indexes must change in one atomic
// script, so they share a hash tag; and Stats must count live sessions and
// distinct users without scanning the keyspace. Both are met by tagging
// with a shard, s0 … s<Shards-1>, picked by FNV-1a of the user id, rather
// than with the user id itself: every script stays in one slot (no
// CROSSSLOT on a cluster), and Stats reads Shards small indexes instead of
// one per user. Options.Shards (default 64) spreads the load over a
// cluster's masters; it must not change once data exists.
//
// Every change of a record and its indexes is one store Script
// (Create, Touch, Update, Rotate, Revoke, RevokeMany) with Lua and Go bodies
// that conformance.CheckScript proves equal. Each checks before it writes:
// that the record exists, that the token's HMAC is its current one, that
// the session is live, that the version matches. So no in-flight Update or
// touch through a token can write to a session that was revoked, rotated
// away or has expired: there is nothing left for it to match (no
// resurrection). The pointer lives in another slot; it is written before
// the record on Create and Rotate and deleted after it on Revoke, so a crash
// in between leaves only a pointer to nothing, which the record (the
// authority: it checks the HMAC) never accepts, and which expires with the
// absolute timeout.
//
// # Which clock decides
//
// The layer's: Options.Clock (default the machine's). Validate on a cache
// hit makes no round trip, so it can only compare deadlines with the local
// clock; if the scripts used the server's TIME instead, a session could be
// live for Validate and expired for Update whenever the two clocks differ.
// So every script gets "now" as an argument (milliseconds) and reads no
// clock, and store TTLs are derived from the same now: they only collect
// garbage (a key the store drops early ends its session early, never late).
// Keep the app servers' clocks synchronised: a skew of d moves the
// deadlines a server applies by d. A script never moves the recorded
// activity backwards.
//
// # Timeouts
//
// A session ends at min(last recorded activity + IdleTimeout, creation +
// AbsoluteTimeout). Nothing moves the absolute deadline: not Extend, not
// Rotate. Validate records activity (one script call) only when the recorded
// activity is at least TouchInterval old (default 1 minute), so a busy
// session writes at most once per interval. The cost is precision: a
// session ends between IdleTimeout − TouchInterval and IdleTimeout after
// the client's last request. Extend records activity at once.
//
// # Rotation
//
// Rotate (on login and on a change of privilege) gives the session a new
// token: same id, data, creation time and absolute deadline. The old token
// still validates for RotationGrace (default 0: not at all), read-only
// (Session.InGrace; Update, Extend and Rotate refuse it, Revoke accepts it
// so that logging out always works), then is not found.
//
// # Secrets
//
// New takes a list of secrets, newest first. Create hashes with the newest;
// Validate tries each in turn until a pointer is found, so rotating the
// secret logs nobody out: prepend the new one, and drop the old one after
// AbsoluteTimeout (or Rotate sessions onto the new one). The cost: a token
// hashed under the k-th secret, and any unknown token, takes k pointer
// lookups (each a cached read on rueidis); keep the list short.
//
// # Concurrency
//
// Update is optimistic: it names the version it read (Session.Version) and
// loses with ErrConflict if another write landed first; read again and
// retry. Touches do not change the version. RevokeAll and RevokeOthers read
// the user's index and run one script over the sessions it names; the
// script refuses if the index names a session the caller did not (created
// meanwhile) and the call retries.
//
// # Cached validation
//
// Validate first looks the token's HMAC up in an in-process pointer cache
// (Options.PointerCache entries): a pointer never changes, it is only
// deleted, and the record decides, so a stale entry can only lead to a
// record that refuses the token (and the entry is then dropped). It then
// reads the record. On a store with store.CachedReader (rueidis) both reads
// go through the client-side cache with Options.MaxStale (default 1 s): a
// hit costs no round trip, a revocation through any instance is seen by
// every other within MaxStale, and one through this instance at once (the
// store reads keys it wrote from the server). Without the capability a
// validation reads the record from the store (and the pointer, the first
// time this process sees the token).
//
// # What each call costs
//
//   - Validate: 1 read of the record (cached when possible), plus the
//     pointer's the first time this process sees the token (one per secret
//     tried, newest first), plus one script when it records activity.
//   - Create: 2 calls (pointer, then the record script). Rotate: 4 (read,
//     new pointer, script, old pointer). Update, Extend: 1 script after the
//     pointer read. Revoke: pointer read, script, pointer deletes.
//   - List: 2 calls (the user's index, one MGet of its records), plus one
//     script if it prunes ended sessions; independent of other users'
//     sessions. RevokeAll / RevokeOthers: index read + one script.
//   - Cleanup: one shard per call, round robin: reads its live index
//     (O(sessions in the shard)) and removes up to CleanupBatch ended
//     sessions, one script per user; call it Shards times per period. It
//     never uses KEYS or SCAN; List and the Revoke calls also prune lazily.
//   - Stats: one read-only script per shard (Shards calls), O(sessions in
//     the shard) on the server each: Live and Users are exact at the
//     moment each shard is read, since they compare every deadline with
//     now; Created, Revoked and Expired are counters the scripts keep
//     (Expired adds ended sessions not yet pruned); InvalidTokens and
//     MalformedTokens are counted in this Manager's memory.
//
// # Limits
//
// User and tenant ids are any bytes, up to store.MaxPartLen (16 KiB);
// Device, UserAgent and IP up to MaxMetaLen each; the encoded app data up
// to Options.MaxDataSize (64 KiB). Larger input is ErrInvalid and writes
// nothing. The app's data is encoded with Options.Codec (JSON by default)
// and decoded only when asked (Session.Data), never on the validation path.
package session
