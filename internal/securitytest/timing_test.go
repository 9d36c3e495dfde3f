package securitytest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// secretName matches identifiers that hold a secret or something compared
// against one: a password, a token, a secret, a hash or a MAC of one.
var secretName = regexp.MustCompile(`(?i)(password|passwd|token|secret|hash|mac|digest|cookie)`)

// TestTimingSafeComparisons reads the source of every package that handles
// secrets and fails on an == or != between operands whose names say they
// hold one (a password, a token, a secret, a hash or MAC of one): such
// comparisons must go through crypto/subtle (or hmac.Equal, or bcrypt),
// which take the same time wherever the first difference lies. Comparisons
// with a constant ("" or nil) leak nothing and are allowed.
func TestTimingSafeComparisons(t *testing.T) {
	var hits []string
	for _, dir := range []string{"session", "internal/sessionrec", "httpapi", "httpapi/demo", "ratelimit", "cmd/karat", "cache", "webui"} {
		files, err := filepath.Glob(filepath.Join("..", "..", dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		fset := token.NewFileSet()
		type parsed struct {
			src  []byte
			file *ast.File
		}
		var pkg []parsed
		consts := map[string]bool{"nil": true, "true": true, "false": true}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			file, err := parser.ParseFile(fset, f, src, 0)
			if err != nil {
				t.Fatal(err)
			}
			pkg = append(pkg, parsed{src, file})
			for _, d := range file.Decls {
				if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.CONST {
					for _, sp := range g.Specs {
						for _, n := range sp.(*ast.ValueSpec).Names {
							consts[n.Name] = true
						}
					}
				}
			}
		}
		for _, p := range pkg {
			src, file := p.src, p.file
			imports := map[string]bool{}
			for _, im := range file.Imports {
				path := strings.Trim(im.Path.Value, `"`)
				name := path[strings.LastIndex(path, "/")+1:]
				if im.Name != nil {
					name = im.Name.Name
				}
				imports[name] = true
			}
			constant := func(e ast.Expr) bool { return constant(e, consts, imports) }
			ast.Inspect(file, func(n ast.Node) bool {
				b, ok := n.(*ast.BinaryExpr)
				if !ok || (b.Op != token.EQL && b.Op != token.NEQ) {
					return true
				}
				if constant(b.X) || constant(b.Y) {
					return true
				}
				x, y := exprText(src, fset, b.X), exprText(src, fset, b.Y)
				if secretName.MatchString(lastName(b.X)) || secretName.MatchString(lastName(b.Y)) {
					hits = append(hits, fset.Position(b.Pos()).String()+": "+x+" "+b.Op.String()+" "+y)
				}
				return true
			})
		}
	}
	for _, h := range hits {
		t.Errorf("a secret compared in variable time (use crypto/subtle): %s", h)
	}
}

// constant reports whether e is a literal, a constant of the package, an
// exported name of an imported package (http.StatusOK), or a len() call:
// comparing with those reveals nothing about a secret's content.
func constant(e ast.Expr, consts, imports map[string]bool) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return consts[e.Name]
	case *ast.CallExpr:
		if id, ok := e.Fun.(*ast.Ident); ok && (id.Name == "len" || id.Name == "cap") {
			return true
		}
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok && imports[x.Name] {
			return !secretName.MatchString(e.Sel.Name)
		}
	}
	return false
}

// lastName is the name an operand is known by: the identifier, the field
// selected, the function called or converted to (and its argument's).
func lastName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	case *ast.CallExpr:
		s := ""
		for _, a := range e.Args {
			s += " " + lastName(a)
		}
		return s
	case *ast.SliceExpr:
		return lastName(e.X)
	case *ast.IndexExpr:
		return lastName(e.X)
	case *ast.ParenExpr:
		return lastName(e.X)
	case *ast.StarExpr:
		return lastName(e.X)
	}
	return ""
}

func exprText(src []byte, fset *token.FileSet, e ast.Expr) string {
	return string(src[fset.Position(e.Pos()).Offset:fset.Position(e.End()).Offset])
}
