package main

import "errors"

var errNoCachedReads = errors.New("store has no cached reads")

// karatHTTPGroups is the HTTP scenario, once httpapi exists.
func karatHTTPGroups() []Group { return nil }
