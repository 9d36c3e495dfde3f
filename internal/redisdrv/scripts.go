package redisdrv

import "github.com/karat-go/karat/store"

// IncrByScript and PersistScript wrap IncrByLua and PersistLua as scripts,
// so that a driver runs them through the same EVALSHA-then-EVAL path as a
// user's script. They have no Go body: only Redis drivers run them. Their
// error replies are Redis's own (WRONGTYPE, not an integer), never raised by
// the body, so drivers map them as replies to plain commands.
var (
	IncrByScript  = store.NewScript("karat-incrby", IncrByLua, nil)
	PersistScript = store.NewScript("karat-persist", PersistLua, nil)
)
