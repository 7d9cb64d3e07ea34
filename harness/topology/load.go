package topology

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"rackdrill.dev/rackdrill/harness/internal/strictyaml"
)

// FileError is every problem of one topology file: each line names the file and
// the field path, so `rackdrill validate` output can be acted on directly.
type FileError = strictyaml.FileError

// Warning is a valid but risky choice (an even number of etcd members).
type Warning struct {
	Field   string
	Message string
}

func (w Warning) String() string { return w.Field + ": " + w.Message }

// Load reads, decodes strictly, defaults and validates the topology at path.
func Load(path string) (*Rack, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read topology: %w", err)
	}
	return Parse(data, path)
}

// Parse is Load for bytes; name is used in messages in place of a file name.
func Parse(data []byte, name string) (*Rack, []Warning, error) {
	// The version is read first, leniently, and checked before the strict
	// decoding of this version's schema (kind's config loading does the
	// same): a file of another version says "unsupported apiVersion", not a
	// list of fields this version does not know, and is not "fixed up" by
	// defaults into something it never said.
	var head header
	if err := yaml.Unmarshal(data, &head); err == nil && head.APIVersion != "" {
		if errs := validateHeader(&head); len(errs) > 0 {
			return nil, nil, &FileError{File: name, Errors: errs}
		}
	}
	var r Rack
	if err := strictyaml.DecodeFile(data, name, &r); err != nil {
		return nil, nil, err
	}
	if errs := validateHeader(&header{r.APIVersion, r.Kind}); len(errs) > 0 {
		return nil, nil, &FileError{File: name, Errors: errs}
	}
	if errs := explicitZeros(data, &r); len(errs) > 0 {
		return nil, nil, &FileError{File: name, Errors: errs}
	}
	SetDefaults(&r)
	errs, warns := Validate(&r)
	if len(errs) > 0 {
		return nil, warns, &FileError{File: name, Errors: strictyaml.WithLines(data, errs)}
	}
	return &r, warns, nil
}

// header is what every version of a topology file starts with.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

func validateHeader(r *header) field.ErrorList {
	var errs field.ErrorList
	if r.APIVersion != APIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), r.APIVersion, []string{APIVersion}))
	}
	if r.Kind != Kind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), r.Kind, []string{Kind}))
	}
	return errs
}

// defaulted are the fields whose zero means "the default": written as 0 (or
// 0s) in a file, they would silently become something the file never said.
var defaulted = map[string]string{
	"spec.controlPlane.endpoint.port":              "6443",
	"spec.controlPlane.keepalived.virtualRouterID": "51",
	"spec.controlPlane.haproxy.statsPort":          "8404",
	"spec.ingress.certMinValidity":                 "336h (14 days)",
	"spec.ups.minCharge":                           "50",
	"spec.ssh.port":                                "22",
	"spec.ssh.deadMan":                             "2m",
	"spec.probes.interval":                         "250ms",
	"spec.probes.timeout":                          "2s",
}

// explicitZeros refuses a defaulted field written as zero, naming its line.
func explicitZeros(data []byte, r *Rack) field.ErrorList {
	paths := map[string]string{}
	for p, d := range defaulted {
		paths[p] = d
	}
	for i := range r.Spec.Nodes {
		paths[fmt.Sprintf("spec.nodes[%d].ssh.port", i)] = "spec.ssh.port"
		paths[fmt.Sprintf("spec.nodes[%d].ssh.deadMan", i)] = "spec.ssh.deadMan"
	}
	var errs field.ErrorList
	for p, d := range paths {
		val, line, ok := strictyaml.Scalar(data, p)
		if !ok {
			continue
		}
		zero := val == "0"
		if dur, err := time.ParseDuration(val); err == nil && dur == 0 {
			zero = true
		}
		if zero {
			errs = append(errs, field.Invalid(pathOf(p), val,
				fmt.Sprintf("0 here would mean the default (%s): leave the field out, or give the value you mean (line %d)", d, line)))
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Field < errs[j].Field })
	return errs
}

// pathOf is a field path from its string form; only names and indexes occur here.
func pathOf(s string) *field.Path {
	var p *field.Path
	for _, part := range strings.Split(s, ".") {
		name, idx, _ := strings.Cut(part, "[")
		if p == nil {
			p = field.NewPath(name)
		} else {
			p = p.Child(name)
		}
		if idx != "" {
			i, _ := strconv.Atoi(strings.TrimSuffix(idx, "]"))
			p = p.Index(i)
		}
	}
	return p
}
