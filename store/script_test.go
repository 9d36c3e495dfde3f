package store

import (
	"errors"
	"testing"
)

func TestValueEqualAndString(t *testing.T) {
	a := ArrayValue(IntValue(1), StringValue("x"), NilValue(), ArrayValue())
	b := ArrayValue(IntValue(1), BytesValue([]byte("x")), BoolValue(false), ArrayValue())
	if !a.Equal(b) {
		t.Fatalf("%s != %s", a, b)
	}
	if a.Equal(ArrayValue(IntValue(1))) || IntValue(1).Equal(StringValue("1")) {
		t.Fatal("different values compare equal")
	}
	if got := a.String(); got != `[1 "x" nil []]` {
		t.Fatalf("String() = %s", got)
	}
	if !BytesValue(nil).Equal(StringValue("")) || BytesValue(nil).Bytes == nil {
		t.Fatal("nil bytes become an empty, non-nil value")
	}
	if n, err := StringValue("42").AsInt(); err != nil || n != 42 {
		t.Fatalf("AsInt = %d, %v", n, err)
	}
	if _, err := NilValue().AsInt(); err == nil {
		t.Fatal("AsInt of nil should fail")
	}
}

func TestScriptSHA1(t *testing.T) {
	s := NewScript("x", "return 1", func(ScriptView, []string, []string) (Value, error) { return IntValue(1), nil })
	// redis-cli SCRIPT LOAD "return 1"
	if s.SHA1() != "e0e1f9fabfc9d4800c877a703b823ac0578ff8db" {
		t.Fatalf("SHA1 = %s", s.SHA1())
	}
	if v, err := s.Run(nil, nil, nil); err != nil || v.Int != 1 {
		t.Fatalf("Run = %v, %v", v, err)
	}
}

func TestScriptErrorAndCapability(t *testing.T) {
	var se *ScriptError
	if err := error(&ScriptError{Message: "CONFLICT x"}); !errors.As(err, &se) || err.Error() != "CONFLICT x" {
		t.Fatalf("ScriptError: %v", err)
	}
	if _, ok := Capability[Scanner](nil); ok {
		t.Fatal("Capability of nil")
	}
}
