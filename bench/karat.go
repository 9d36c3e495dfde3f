package main

import "errors"

var errNoCachedReads = errors.New("store has no cached reads")

// karatSessionScenarios are karat's session validations (filled in once the
// session layer is on main).
func karatSessionScenarios() []Scenario { return nil }

// karatLimiters are karat's rate limiters.
func karatLimiters() []Limiter { return nil }

// karatHTTPGroups is the HTTP scenario, once httpapi exists.
func karatHTTPGroups() []Group { return nil }
