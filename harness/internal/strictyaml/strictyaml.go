// Package strictyaml decodes a versioned YAML config into Go types and, unlike a
// plain strict decode, names every problem by its field path and line
// ("spec.nodes[2].adress (line 14): unknown field"), all at once, so that a user
// fixes a file in one pass.
//
// It walks the YAML node tree against the target type's json tags (the tags that
// sigs.k8s.io/yaml, and so the real decode, honours) to find unknown and
// duplicate keys, then decodes with sigs.k8s.io/yaml in strict mode for the values.
package strictyaml

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	yaml3 "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// Decode decodes data into out (a pointer to a struct), rejecting unknown fields,
// duplicate keys and mistyped values. The error is a field.ErrorList aggregate
// (errors.As into *ListError) whose entries carry the field path.
func Decode(data []byte, out any) error {
	dec := yaml3.NewDecoder(bytes.NewReader(data))
	var doc yaml3.Node
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return &ListError{List: field.ErrorList{documentError("not valid YAML: " + trimYAMLPrefix(err))}}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return &ListError{List: field.ErrorList{documentError("the file is empty")}}
	}
	// One file, one object: a second document would be silently ignored by
	// the decode below.
	var next yaml3.Node
	if err := dec.Decode(&next); err != io.EOF {
		line := next.Line
		if len(next.Content) > 0 {
			line = next.Content[0].Line
		}
		if err != nil {
			return &ListError{List: field.ErrorList{documentError("not valid YAML: " + trimYAMLPrefix(err))}}
		}
		return &ListError{List: field.ErrorList{documentError(fmt.Sprintf("line %d: a second YAML document: the file must hold exactly one", line))}}
	}
	root := doc.Content[0]
	if root.Kind != yaml3.MappingNode {
		return &ListError{List: field.ErrorList{documentError(fmt.Sprintf("line %d: expected a mapping at the top level", root.Line))}}
	}
	var errs field.ErrorList
	walk(root, reflect.TypeOf(out).Elem(), nil, &errs)
	if len(errs) > 0 {
		return &ListError{List: errs}
	}
	if hasMerge(root) {
		// YAML's merge keys (<<: *base) let a mapping override what it
		// merges; the strict decode below would call each override a
		// duplicate. The document is given to it with the merges resolved,
		// as YAML defines them (real duplicates were refused above).
		var v any
		if err := root.Decode(&v); err != nil {
			return &ListError{List: field.ErrorList{documentError("not valid YAML: " + trimYAMLPrefix(err))}}
		}
		resolved, err := yaml3.Marshal(v)
		if err != nil {
			return err
		}
		data = resolved
	}
	if err := yaml.UnmarshalStrict(data, out); err != nil {
		return &ListError{List: field.ErrorList{typeError(err)}}
	}
	return nil
}

// documentError is a problem of the whole document, with no field path.
func documentError(msg string) *field.Error {
	return &field.Error{Type: field.ErrorTypeInvalid, BadValue: field.OmitValueType{}, Detail: msg}
}

// FileError is every problem of one file, each line naming the file and the
// field path so that it can be acted on directly.
type FileError struct {
	File   string
	Errors field.ErrorList
}

// MaxShown bounds the problems a FileError prints: a small file whose
// aliases repeat one mistake (a 9 KB file made 1,500 identical lines) must
// not bury the first ones. Errors keeps them all.
const MaxShown = 25

func (e *FileError) Error() string {
	var b strings.Builder
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteByte('\n')
		}
		if i == MaxShown {
			fmt.Fprintf(&b, "%s: and %d more problems (the first %d are shown: fix those first)", e.File, len(e.Errors)-MaxShown, MaxShown)
			break
		}
		if fe.Field == "" {
			fmt.Fprintf(&b, "%s: %s", e.File, fe.Detail)
			continue
		}
		fmt.Fprintf(&b, "%s: %s", e.File, fe.Error())
	}
	return b.String()
}

// DecodeFile is Decode with errors as a *FileError naming file.
func DecodeFile(data []byte, file string, out any) error {
	err := Decode(data, out)
	var le *ListError
	if errors.As(err, &le) {
		return &FileError{File: file, Errors: le.List}
	}
	return err
}

// ListError is every problem found in one file.
type ListError struct{ List field.ErrorList }

func (e *ListError) Error() string {
	msgs := make([]string, len(e.List))
	for i, fe := range e.List {
		msgs[i] = fe.Error()
	}
	return strings.Join(msgs, "\n")
}

// walk reports keys of n that t has no field for. Values of the wrong kind are
// left to the real decode, which names them too.
func walk(n *yaml3.Node, t reflect.Type, path *field.Path, errs *field.ErrorList) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml3.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml3.ScalarNode && n.ShortTag() == "!!null" {
		return // null is the zero value
	}
	if msg := kindMismatch(n, t); msg != "" {
		*errs = append(*errs, field.Invalid(path, field.OmitValueType{}, fmt.Sprintf("%s (line %d)", msg, n.Line)))
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if isOpaque(t) {
			return
		}
		fields := jsonFields(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" {
				continue // merge key: its keys are checked where they are defined
			}
			p := path.Child(k.Value)
			if line, dup := seen[k.Value]; dup {
				*errs = append(*errs, field.Duplicate(p, fmt.Sprintf("key repeated at line %d (first at line %d)", k.Line, line)))
				continue
			}
			seen[k.Value] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, field.Forbidden(p, fmt.Sprintf("unknown field (line %d)%s", k.Line, suggest(k.Value, fields))))
				continue
			}
			walk(v, ft, p, errs)
		}
	case reflect.Slice, reflect.Array:
		for i, c := range n.Content {
			walk(c, t.Elem(), path.Index(i), errs)
		}
	case reflect.Map:
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := path.Key(k.Value)
			if line, dup := seen[k.Value]; dup {
				*errs = append(*errs, field.Duplicate(p, fmt.Sprintf("key repeated at line %d (first at line %d)", k.Line, line)))
				continue
			}
			seen[k.Value] = k.Line
			walk(v, t.Elem(), p, errs)
		}
	}
}

var durationType = reflect.TypeOf(metav1.Duration{})

// kindMismatch says what is wrong when node n cannot decode into t, or "".
func kindMismatch(n *yaml3.Node, t reflect.Type) string {
	what := map[yaml3.Kind]string{yaml3.SequenceNode: "a list", yaml3.MappingNode: "a mapping", yaml3.ScalarNode: "a " + scalarName(n)}[n.Kind]
	switch {
	case isOpaque(t):
		if n.Kind != yaml3.ScalarNode || n.ShortTag() != "!!str" {
			return fmt.Sprintf("must be a string such as \"30s\", not %s", what)
		}
		if t == durationType {
			if _, err := time.ParseDuration(n.Value); err != nil {
				return fmt.Sprintf("must be a duration such as 30s, 5m or 1h30m, not %q", n.Value)
			}
		} else if raw, err := json.Marshal(n.Value); err == nil {
			// A type of the file's own (a budget: "15%" or "10s") says
			// what it takes; its error is named here, with path and line.
			if err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(raw); err != nil {
				return "must be " + err.Error()
			}
		}
	case t.Kind() == reflect.Struct || t.Kind() == reflect.Map:
		if n.Kind != yaml3.MappingNode {
			return "must be a mapping, not " + what
		}
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		if n.Kind != yaml3.SequenceNode {
			return "must be a list, not " + what
		}
	case t.Kind() == reflect.String:
		if n.Kind != yaml3.ScalarNode || n.ShortTag() != "!!str" {
			return "must be a string, not " + what + " (quote it)"
		}
	case t.Kind() == reflect.Bool:
		if n.Kind != yaml3.ScalarNode || n.ShortTag() != "!!bool" {
			return "must be true or false, not " + what
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		if n.Kind != yaml3.ScalarNode || n.ShortTag() != "!!int" {
			return "must be a whole number, not " + what
		}
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		if n.Kind != yaml3.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
			return "must be a number, not " + what
		}
	}
	return ""
}

func scalarName(n *yaml3.Node) string {
	switch n.ShortTag() {
	case "!!int", "!!float":
		return "number " + n.Value
	case "!!bool":
		return "boolean " + n.Value
	default:
		return fmt.Sprintf("string %q", n.Value)
	}
}

// isOpaque reports types that decode themselves from a scalar (metav1.Duration,
// time.Time): their Go fields are not YAML keys.
func isOpaque(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(reflect.TypeOf((*json.Unmarshaler)(nil)).Elem())
}

// jsonFields maps each JSON key of struct t to its field type, following embedded
// structs the way encoding/json does.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			for k, v := range jsonFields(ft) {
				out[k] = v
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// suggest names a known field that differs from key by case or one edit, the
// usual typo.
func suggest(key string, fields map[string]reflect.Type) string {
	for k := range fields {
		if strings.EqualFold(k, key) || editDistanceAtMostOne(k, key) {
			return fmt.Sprintf(": did you mean %q?", k)
		}
	}
	return ""
}

func editDistanceAtMostOne(a, b string) bool {
	if a == b {
		return true
	}
	la, lb := len(a), len(b)
	if la-lb > 1 || lb-la > 1 {
		return false
	}
	i, j, edits := 0, 0, 0
	for i < la && j < lb {
		if a[i] == b[j] {
			i++
			j++
			continue
		}
		edits++
		if edits > 1 {
			return false
		}
		switch {
		case la > lb:
			i++
		case lb > la:
			j++
		default:
			i++
			j++
		}
	}
	return edits+(la-i)+(lb-j) <= 1
}

// typeError turns a decode error into a field error with the path encoding/json
// reports (UnmarshalTypeError.Field is the full dotted path from the root).
func typeError(err error) *field.Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return field.Invalid(dottedPath(te.Field), te.Value, fmt.Sprintf("must be of type %s", te.Type))
	}
	msg := err.Error()
	// sigs.k8s.io/yaml wraps errors of custom unmarshalers without a path; say so plainly.
	msg = strings.TrimPrefix(msg, "error unmarshaling JSON: while decoding JSON: ")
	return documentError(msg)
}

// dottedPath turns encoding/json's "spec.nodes.address" into a field.Path. It
// cannot recover list indexes, which encoding/json does not report.
func dottedPath(s string) *field.Path {
	var p *field.Path
	for _, part := range strings.Split(s, ".") {
		if n, err := strconv.Atoi(part); err == nil {
			p = p.Index(n)
			continue
		}
		p = p.Child(part)
	}
	return p
}

func trimYAMLPrefix(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// hasMerge reports whether a mapping under n uses a merge key.
func hasMerge(n *yaml3.Node) bool {
	if n.Kind == yaml3.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "<<" {
				return true
			}
		}
	}
	for _, c := range n.Content {
		if hasMerge(c) {
			return true
		}
	}
	return false
}
