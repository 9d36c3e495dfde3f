package main

import "errors"

var errNoCachedReads = errors.New("store has no cached reads")

// karatLimiters are karat's rate limiters.
func karatLimiters() []Limiter { return nil }

// karatHTTPGroups is the HTTP scenario, once httpapi exists.
func karatHTTPGroups() []Group { return nil }
