package redisdrv

import "regexp"

// gopherLuaWrap is how miniredis (gopher-lua) reports an error that a
// redis.call raised inside a script: its reply wraps the command's own error
// as "ERR Error compiling script (new function): <chunk>:<line>: WRONGTYPE ...",
// where Redis 7 puts the command's error code first.
var gopherLuaWrap = regexp.MustCompile(`^ERR Error compiling script \(new function\): [^ ]*:[0-9]+: `)

// ScriptReplyMessage returns the text of an error reply to EVAL or EVALSHA
// with miniredis's wrapping removed, so that ReplyError (which calls it) finds the error code
// (WRONGTYPE, ...) where Redis puts it. Other replies are returned unchanged.
func ScriptReplyMessage(msg string) string {
	return gopherLuaWrap.ReplaceAllLiteralString(msg, "")
}
