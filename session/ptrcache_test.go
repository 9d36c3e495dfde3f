package session

import (
	"strconv"

	"github.com/karat-go/karat/internal/sessionrec"
)

func sessionrecPointer(i int) target {
	return target{Pointer: sessionrec.Pointer{ID: strconv.Itoa(i), User: "u"}}
}
