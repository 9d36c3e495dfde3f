package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/karat-go/karat/store"
)

// Problem is an RFC 9457 problem detail, the body of every error response.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// ProblemContentType is the media type of a problem detail (RFC 9457).
const ProblemContentType = "application/problem+json"

// WriteProblem writes an RFC 9457 problem with the given status. detail is
// shown to the client: it must never hold a secret. The type is "about:blank"
// and the title the status text, as RFC 9457 section 4.2.1 prescribes.
func WriteProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	p := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
	if r != nil {
		p.Instance = r.URL.EscapedPath()
	}
	w.Header().Set("Content-Type", ProblemContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// StoreDown reports whether err means the store could not answer in time:
// unreachable, closed, or past the request's deadline. Such errors become 503.
func StoreDown(err error) bool {
	return errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded)
}

// writeError turns an error from a layer into a problem: 503 when the store is
// down (StoreDown), 500 otherwise. The error itself is logged by the request
// log, never shown to the client.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	setLogError(r, err)
	if StoreDown(err) {
		w.Header().Set("Retry-After", "1")
		WriteProblem(w, r, http.StatusServiceUnavailable, "the store is unavailable; try again shortly")
		return
	}
	WriteProblem(w, r, http.StatusInternalServerError, "internal error")
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
