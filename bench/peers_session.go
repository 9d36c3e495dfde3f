package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	redigo "github.com/gomodule/redigo/redis"
	"github.com/gorilla/sessions"
	gorillaredis "github.com/rbcervilla/redisstore/v9"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// The session every scenario stores and validates: the same metadata for
// karat and its peers, so that bytes per session compare.
const (
	sessionIP  = "203.0.113.7"
	sessionUA  = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	sessionTTL = 24 * time.Hour
)

func sessionUser(i int) string { return "user-" + strconv.Itoa(i) }

var errNoSession = errors.New("session not found or empty")

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// scsSetup is alexedwards/scs over a store: sessions written by the
// manager's own codec and store, validated with Load + GetString as its
// middleware does per request.
func scsSetup(env *Env, name string, st scs.Store, closeFn func()) (*Instance, error) {
	sm := scs.New()
	sm.Lifetime = sessionTTL
	sm.Store = st
	tokens := make([]string, env.Keys)
	deadline := time.Now().Add(sessionTTL)
	err := fill(env.Keys, func(i int) error {
		b, err := sm.Codec.Encode(deadline, map[string]any{
			"user_id": sessionUser(i), "ip": sessionIP, "ua": sessionUA, "created": time.Now().Unix(),
		})
		if err != nil {
			return err
		}
		tokens[i] = randomToken()
		if cs, ok := st.(scs.CtxStore); ok {
			return cs.CommitCtx(context.Background(), tokens[i], b, deadline)
		}
		return st.Commit(tokens[i], b, deadline)
	})
	if err != nil {
		closeFn()
		return nil, err
	}
	return &Instance{
		NewOp: func() Op {
			return func(ctx context.Context, k int) error {
				c, err := sm.Load(ctx, tokens[k])
				if err != nil {
					return err
				}
				if sm.GetString(c, "user_id") == "" {
					return errNoSession
				}
				return nil
			}
		},
		Close: closeFn,
	}, nil
}

func scsGoRedis(env *Env) (*Instance, error) {
	c := newGoRedis(env)
	return scsSetup(env, "scs-goredis", goredisstore.NewWithPrefix(c, env.Prefix+":scs-goredis:"), func() { c.Close() })
}

// scsRedigo uses a redigo pool keeping 64 idle connections (redigo's default
// keeps none, which would dial per request; scs's README sets MaxIdle too).
func scsRedigo(env *Env) (*Instance, error) {
	pool := &redigo.Pool{
		MaxIdle: 64,
		Dial: func() (redigo.Conn, error) {
			return redigo.Dial("tcp", env.RedisAddr, redigo.DialDatabase(env.DB))
		},
	}
	return scsSetup(env, "scs-redigo", redisstore.NewWithPrefix(pool, env.Prefix+":scs-redigo:"), func() { pool.Close() })
}

// gorillaRedis is gorilla/sessions with rbcervilla/redisstore (go-redis v9):
// the cookie holds the session id, the gob-encoded values live in Redis.
// Each validation is a fresh *http.Request (as every HTTP request is) and
// store.Get, the call handlers make.
func gorillaRedis(env *Env) (*Instance, error) {
	c := newGoRedis(env)
	ctx := context.Background()
	st, err := gorillaredis.NewRedisStore(ctx, c)
	if err != nil {
		c.Close()
		return nil, err
	}
	st.KeyPrefix(env.Prefix + ":gorilla:")
	st.Options(sessions.Options{Path: "/", MaxAge: int(sessionTTL / time.Second), HttpOnly: true})
	const name = "session"
	cookies := make([][]string, env.Keys)
	err = fill(env.Keys, func(i int) error {
		r := httptest.NewRequest("GET", "/", nil)
		s, err := st.New(r, name)
		if err != nil {
			return err
		}
		s.Values["user_id"] = sessionUser(i)
		s.Values["ip"] = sessionIP
		s.Values["ua"] = sessionUA
		s.Values["created"] = time.Now().Unix()
		if err := st.Save(r, httptest.NewRecorder(), s); err != nil {
			return err
		}
		cookies[i] = []string{name + "=" + s.ID}
		return nil
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	return &Instance{
		NewOp: func() Op {
			base := httptest.NewRequest("GET", "/", nil)
			return func(ctx context.Context, k int) error {
				r := new(http.Request)
				*r = *base
				r.Header = http.Header{"Cookie": cookies[k]}
				s, err := st.Get(r, name)
				if err != nil {
					return err
				}
				if s.IsNew || s.Values["user_id"] == nil {
					return errNoSession
				}
				return nil
			}
		},
		Close: func() { c.Close() },
	}, nil
}

// rawSessionGet is the floor for a session read: one GET of a stored value
// of a session's size, with no decoding. cached uses rueidis DoCache.
func rawSessionGet(cached bool) func(env *Env) (*Instance, error) {
	return func(env *Env) (*Instance, error) {
		c, err := newRueidis(env, !cached)
		if err != nil {
			return nil, err
		}
		keys := keyNames(env, "raw-session", env.Keys)
		val := make([]byte, 180)
		ctx := context.Background()
		if err := fill(env.Keys, func(i int) error {
			return c.Do(ctx, c.B().Set().Key(keys[i]).Value(rueidis.BinaryString(val)).Ex(sessionTTL).Build()).Error()
		}); err != nil {
			c.Close()
			return nil, err
		}
		return &Instance{
			NewOp: func() Op {
				return func(ctx context.Context, k int) error {
					if cached {
						return c.DoCache(ctx, c.B().Get().Key(keys[k]).Cache(), time.Minute).Error()
					}
					return c.Do(ctx, c.B().Get().Key(keys[k]).Build()).Error()
				}
			},
			Close: c.Close,
		}, nil
	}
}

var _ redis.UniversalClient = (*redis.Client)(nil)
