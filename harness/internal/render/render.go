package render

import (
	"bytes"
	"io/fs"
	"text/template"
)

// Set is a package's templates, parsed once.
type Set struct{ t *template.Template }

// Must parses the templates of fsys matching pattern, with funcs; it panics on
// a template that does not parse, which a test of the package catches.
func Must(fsys fs.FS, pattern string, funcs template.FuncMap) *Set {
	return &Set{template.Must(template.New("").Funcs(funcs).ParseFS(fsys, pattern))}
}

// Render executes the template name (a file or a {{define}}d name) with data.
func (s *Set) Render(name string, data any) (string, error) {
	var b bytes.Buffer
	if err := s.t.ExecuteTemplate(&b, name, data); err != nil {
		return "", err
	}
	return b.String(), nil
}
