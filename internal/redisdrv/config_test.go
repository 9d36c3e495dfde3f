package redisdrv

import (
	"errors"
	"testing"

	"github.com/karat-go/karat/store"
)

func TestConfigReplies(t *testing.T) {
	cause := errors.New("cause")
	for msg, config := range map[string]bool{
		"WRONGPASS invalid username-password pair or user is disabled.":  true,
		"NOAUTH Authentication required.":                                true,
		"NOPERM User pinger has no permissions to run the 'get' command": true,
		"ERR DB index is out of range":                                   true,
		"ERR invalid DB index":                                           true,
		"ERR AUTH <password> called without any password configured for the default user. Are you sure your ...": true,
		"ERR Client sent AUTH, but no password is set":                                                           true,
		"LOADING Redis is loading the dataset in memory":                                                         false,
		"ERR value is not an integer or out of range":                                                            false,
	} {
		err := ReplyError(msg, cause, false)
		if got := errors.Is(err, store.ErrConfig); got != config {
			t.Errorf("ReplyError(%q) = %v: ErrConfig %v, want %v", msg, err, got, config)
		}
		if config && errors.Is(err, store.ErrUnavailable) {
			t.Errorf("ReplyError(%q) = %v is also ErrUnavailable", msg, err)
		}
	}
}
