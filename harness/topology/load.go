package topology

import (
	"fmt"
	"os"

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
