package strictyaml

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// WithLines adds, to each error of errs that does not say its line yet, the
// line of data where its field is written ("... (line 14)"): a rule broken
// after decoding (a VIP outside its network) is found in the file as quickly
// as a parse error. A field the file leaves to its default has no line and is
// left as it is.
func WithLines(data []byte, errs field.ErrorList) field.ErrorList {
	var doc yaml3.Node
	if yaml3.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return errs
	}
	out := make(field.ErrorList, 0, len(errs))
	for _, e := range errs {
		if e.Field != "" && !strings.Contains(e.Detail, "(line ") {
			if n := lookup(doc.Content[0], e.Field); n != nil {
				c := *e
				c.Detail = strings.TrimSpace(fmt.Sprintf("%s (line %d)", c.Detail, n.Line))
				e = &c
			} else if e.Type == field.ErrorTypeRequired {
				// A required field left out: where it belongs.
				if at, n := writtenParent(doc.Content[0], e.Field); n != nil {
					c := *e
					c.Detail = strings.TrimSpace(fmt.Sprintf("%s (missing from %s, line %d)", c.Detail, at, n.Line))
					e = &c
				}
			}
		}
		out = append(out, e)
	}
	return out
}

// writtenParent is the nearest field above path p that the file writes, and
// its node.
func writtenParent(root *yaml3.Node, p string) (string, *yaml3.Node) {
	for {
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			return "", nil
		}
		p = p[:i]
		if n := lookup(root, p); n != nil {
			return p, n
		}
	}
}

// segment is one step of a field path: a key, then any indexes or map keys.
var segment = regexp.MustCompile(`^([^\[\]]*)((?:\[[^\]]*\])*)$`)

// lookup finds the node of the field path p ("spec.nodes[4].address") under
// root, following aliases and merge keys, or nil.
func lookup(root *yaml3.Node, p string) *yaml3.Node {
	n := root
	for _, part := range strings.Split(p, ".") {
		m := segment.FindStringSubmatch(part)
		if m == nil {
			return nil
		}
		if m[1] != "" {
			if n = child(n, m[1]); n == nil {
				return nil
			}
		}
		for _, sub := range strings.Split(strings.Trim(m[2], "[]"), "][") {
			if m[2] == "" {
				break
			}
			n = deref(n)
			if i, err := strconv.Atoi(sub); err == nil && n.Kind == yaml3.SequenceNode {
				if i < 0 || i >= len(n.Content) {
					return nil
				}
				n = n.Content[i]
			} else if n = child(n, sub); n == nil {
				return nil
			}
		}
	}
	return n
}

func deref(n *yaml3.Node) *yaml3.Node {
	for n != nil && n.Kind == yaml3.AliasNode {
		n = n.Alias
	}
	return n
}

// child is the value of key in mapping n, looking through merge keys (<<).
func child(n *yaml3.Node, key string) *yaml3.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml3.MappingNode {
		return nil
	}
	var merged []*yaml3.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == key {
			return v
		}
		if k.Value == "<<" {
			v = deref(v)
			if v.Kind == yaml3.SequenceNode {
				merged = append(merged, v.Content...)
			} else {
				merged = append(merged, v)
			}
		}
	}
	for _, m := range merged {
		if v := child(m, key); v != nil {
			return v
		}
	}
	return nil
}

// Scalar is the value written in data at the field path p, with its line: ok
// only when the file writes it (a field left to its default is not there).
func Scalar(data []byte, p string) (value string, line int, ok bool) {
	var doc yaml3.Node
	if yaml3.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return "", 0, false
	}
	n := deref(lookup(doc.Content[0], p))
	if n == nil || n.Kind != yaml3.ScalarNode {
		return "", 0, false
	}
	return n.Value, n.Line, true
}
