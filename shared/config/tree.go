package config

import (
	"encoding"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// entry is one value in the document: the root, a mapping value or a
// sequence item.
type entry struct {
	path  string
	depth int
	key   *yaml.Node   // the mapping key; nil for the root and sequence items
	value *yaml.Node   // never nil
	typ   reflect.Type // what the value decodes into; nil when not known
}

// line is where the entry is reported: on its key if it has one (for a
// nested mapping that is the line naming it, not the line of its first
// child).
func (e *entry) line() int {
	if e.key != nil {
		return e.key.Line
	}
	return e.value.Line
}

// index holds the entries of a document in document order.
type index struct {
	entries []*entry
	byPath  map[string]*entry
	used    map[*entry]bool // entries already blamed for a yaml error
}

// newIndex walks the document (a *yaml.Node of kind DocumentNode; nil for an
// empty file) alongside t, the type it is decoded into.
func newIndex(doc *yaml.Node, t reflect.Type) *index {
	idx := &index{byPath: map[string]*entry{}, used: map[*entry]bool{}}
	if doc == nil {
		return idx
	}
	root := doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root = doc.Content[0]
	}
	var visit func(path string, depth int, key, val *yaml.Node, t reflect.Type)
	visit = func(path string, depth int, key, val *yaml.Node, t reflect.Type) {
		e := &entry{path: path, depth: depth, key: key, value: val, typ: t}
		idx.entries = append(idx.entries, e)
		if _, dup := idx.byPath[path]; !dup {
			idx.byPath[path] = e
		}
		switch val.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(val.Content); i += 2 {
				k, v := val.Content[i], val.Content[i+1]
				visit(joinKey(path, k.Value), depth+1, k, v, childType(t, k.Value))
			}
		case yaml.SequenceNode:
			et := elemType(t)
			for i, v := range val.Content {
				visit(path+"["+strconv.Itoa(i)+"]", depth+1, nil, v, et)
			}
		}
		// Aliases are not followed: yaml reports problems in aliased content
		// at the anchor, which is visited where it is defined.
	}
	visit("", 0, nil, root, t)
	return idx
}

// keyError makes an *Error about key, on the line of the key or, when the key
// is not in the file, on the line of its closest ancestor that is (no line if
// that is the document itself).
func (idx *index) keyError(name, key, msg string, err error) *Error {
	e := &Error{File: name, Key: key, Msg: msg, Err: err}
	for k := key; k != ""; k = parentKey(k) {
		if en, ok := idx.byPath[k]; ok {
			e.Line = en.line()
			break
		}
	}
	return e
}

// find returns the first entry not yet blamed that matches, else the first
// one that matches, else nil.
func (idx *index) find(match func(*entry) bool) *entry {
	var first *entry
	for _, e := range idx.entries {
		if !match(e) {
			continue
		}
		if !idx.used[e] {
			idx.used[e] = true
			return e
		}
		if first == nil {
			first = e
		}
	}
	return first
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	yamlUnmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

// custom reports whether t decodes itself, so its children's types are not
// known.
func custom(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t.Implements(textUnmarshalerType) || pt.Implements(textUnmarshalerType) ||
		t.Implements(yamlUnmarshalerType) || pt.Implements(yamlUnmarshalerType)
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// childType is the type the value of mapping key k decodes into when the
// mapping decodes into t.
func childType(t reflect.Type, k string) reflect.Type {
	t = deref(t)
	if t == nil || custom(t) {
		return nil
	}
	switch t.Kind() {
	case reflect.Map:
		return t.Elem()
	case reflect.Struct:
		return fieldType(t, k)
	}
	return nil
}

func elemType(t reflect.Type) reflect.Type {
	t = deref(t)
	if t == nil || custom(t) {
		return nil
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return t.Elem()
	}
	return nil
}

// fieldType finds the field of struct type t that YAML key k decodes into,
// following yaml's rules: the `yaml:"name"` tag or else the lower-cased field
// name, "-" skipped, ",inline" structs flattened, an ",inline" map taking the
// rest.
func fieldType(t reflect.Type, k string) reflect.Type {
	var inlineMap reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		if f.PkgPath != "" && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "" && !strings.Contains(string(f.Tag), ":") {
			tag = string(f.Tag)
		}
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			ft := deref(f.Type)
			switch ft.Kind() {
			case reflect.Map:
				inlineMap = ft.Elem()
			case reflect.Struct:
				if !custom(ft) {
					if r := fieldType(ft, k); r != nil {
						return r
					}
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == k {
			return f.Type
		}
	}
	return inlineMap
}
