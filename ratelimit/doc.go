// Package ratelimit limits requests with policies kept in a karat store.
package ratelimit
