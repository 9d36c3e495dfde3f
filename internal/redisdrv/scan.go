package redisdrv

import "strings"

// globEscaper backslash-escapes the characters SCAN MATCH treats as a glob.
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)

// ScanPattern is the SCAN MATCH pattern for keys that begin with prefix,
// taken literally: store.Scanner promises that glob characters in a prefix
// match only themselves.
func ScanPattern(prefix string) string {
	return globEscaper.Replace(prefix) + "*"
}

// ScanCount is the COUNT hint of every SCAN: large enough that a scan of a
// big keyspace takes few round trips, small enough that one reply stays
// small.
const ScanCount = 1000
