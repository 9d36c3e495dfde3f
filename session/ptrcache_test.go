package session

import (
	"strconv"

	"github.com/karat-go/karat/internal/sessionrec"
)

func sessionrecPointer(i int) sessionrec.Pointer {
	return sessionrec.Pointer{ID: strconv.Itoa(i), User: "u"}
}
