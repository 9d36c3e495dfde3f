package main

import "errors"

var errNoCachedReads = errors.New("store has no cached reads")
