package main

import (
	"context"
	"crypto/rand"
	"strconv"
	"time"

	"github.com/karat-go/karat/session"
)

// karatSessionScenarios are karat's session validations: rueidis with its
// client-side cache (the default), rueidis without it, go-redis, memory.
func karatSessionScenarios() []Scenario {
	return []Scenario{
		{Name: "karat-rueidis-csc", Kind: KindKarat, Setup: karatSession("")},
		{Name: "karat-rueidis-nocache", Kind: KindKarat, Setup: karatSession("client_cache=0")},
		{Name: "karat-goredis", Kind: KindKarat, Setup: karatSession("driver=goredis")},
		{Name: "karat-memory", Kind: KindKarat, Setup: karatSession("memory")},
	}
}

// karatSession creates env.Keys sessions (same user agent and IP as the
// peers' sessions, a user and a tenant each; idle and absolute timeouts of
// 24 h like the peers' lifetime; activity recorded at most hourly) and
// validates their tokens. On Redis the
// sessions are created through another store, as a login server would: a
// store reads its own recent writes from the server.
func karatSession(query string) func(env *Env) (*Instance, error) {
	return func(env *Env) (*Instance, error) {
		s, err := openKarat(env, query)
		if err != nil {
			return nil, err
		}
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		ns, err := karatNS(env, "karat-session-"+strconv.FormatInt(time.Now().UnixNano(), 36))
		if err != nil {
			s.Close()
			return nil, err
		}
		// TouchInterval 1 h: a validation records activity (a script call)
		// when the recorded one is older than that. With the default (1
		// minute), a session validated less often than once a minute, as
		// each of 100,000 is here, would pay a write on nearly every
		// validation, which scs and gorilla/sessions (no idle timeout) never
		// do. The idle timeout's precision is what it costs.
		opts := &session.Options{Namespace: ns, IdleTimeout: sessionTTL, AbsoluteTimeout: sessionTTL, TouchInterval: time.Hour}
		m, err := session.New(s, [][]byte{secret}, opts)
		if err != nil {
			s.Close()
			return nil, err
		}
		w, wm := s, m
		if query != "memory" {
			if w, err = openKarat(env, query); err != nil {
				s.Close()
				return nil, err
			}
			if wm, err = session.New(w, [][]byte{secret}, opts); err != nil {
				s.Close()
				w.Close()
				return nil, err
			}
		}
		tokens := make([]string, env.Keys)
		err = fill(env.Keys, func(i int) error {
			tok, _, err := wm.Create(context.Background(), sessionUser(i), cacheTenants[i%len(cacheTenants)],
				session.Meta{UserAgent: sessionUA, IP: sessionIP})
			tokens[i] = tok
			return err
		})
		if w != s {
			w.Close()
		}
		if err != nil {
			s.Close()
			return nil, err
		}
		return &Instance{
			NewOp: func() Op {
				return func(ctx context.Context, k int) error {
					sess, err := m.Validate(ctx, tokens[k])
					if err != nil {
						return err
					}
					if sess.User == "" {
						return errNoSession
					}
					return nil
				}
			},
			Close: func() { s.Close() },
		}, nil
	}
}
