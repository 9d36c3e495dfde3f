package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// respConn is a minimal RESP2 client, enough to check readiness and set
// servers up.
type respConn struct {
	net.Conn
	r *bufio.Reader
}

// dialRESP connects to addr, over TLS with cfg unless it is nil; the
// connection has a deadline timeout away.
func dialRESP(addr string, cfg *tls.Config, timeout time.Duration) (*respConn, error) {
	d := &net.Dialer{Timeout: timeout}
	var c net.Conn
	var err error
	if cfg != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, cfg)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	return &respConn{Conn: c, r: bufio.NewReader(c)}, nil
}

// do sends a command and reads its reply: a string, an int64, nil, a []any,
// or a respError as the error.
func (c *respConn) do(args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return nil, err
	}
	return c.read()
}

// respError is an error reply.
type respError string

// Error returns the reply text.
func (e respError) Error() string { return string(e) }

func (c *respConn) read() (any, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty RESP line")
	}
	kind, rest := line[0], line[1:]
	switch kind {
	case '+':
		return rest, nil
	case '-':
		return nil, respError(rest)
	case ':':
		return strconv.ParseInt(rest, 10, 64)
	case '$', '*':
		n, err := strconv.Atoi(rest)
		if err != nil {
			return nil, err
		}
		if n < 0 {
			return nil, nil
		}
		if kind == '$' {
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(c.r, buf); err != nil {
				return nil, err
			}
			return string(buf[:n]), nil
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = c.read(); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected RESP line %q", line)
}

// command runs one command against the plain server at addr.
func command(addr string, args ...string) (any, error) {
	c, err := dialRESP(addr, nil, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.do(args...)
}

// answersAs checks that the server at addr answers and is process pid: a
// server someone else started on a port we found free must not pass for
// ours while ours fails to bind it.
func answersAs(addr string, cfg *tls.Config, pid int) error {
	c, err := dialRESP(addr, cfg, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := c.do("INFO", "server")
	if err != nil {
		return err
	}
	if s, _ := r.(string); !strings.Contains(s, "\r\nprocess_id:"+strconv.Itoa(pid)+"\r\n") {
		return fmt.Errorf("%s is not our redis-server (pid %d)", addr, pid)
	}
	return nil
}
