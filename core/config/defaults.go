package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/timgw/timgw/conf"
)

// Defaults returns the configuration every file starts from: conf/timgw.yaml as embedded
// in the binary, with its ${ENV} references expanded. It panics when the embedded file
// does not decode, which TestDefaultsAreTheEmbeddedFile rules out.
func Defaults() Config {
	c, err := defaults()
	if err != nil {
		panic(err)
	}
	return c
}

// defaults decodes the embedded conf/timgw.yaml.
func defaults() (Config, error) {
	var c Config
	if err := decodeOver(&c, expandEnv(conf.Default)); err != nil {
		return Config{}, fmt.Errorf("embedded defaults (conf/timgw.yaml): %w", err)
	}
	return c, nil
}

// decodeOver decodes the YAML document data over c, key by key: a key the document
// leaves out keeps its value in c, a section (a YAML mapping decoded into a struct) is
// merged key by key in turn, and lists and maps the document sets replace c's as whole
// values. Unknown keys are errors.
func decodeOver(c *Config, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if len(doc.Content) == 0 {
		return nil // an empty document (or only comments) sets nothing
	}
	clearReplaced(doc.Content[0], reflect.ValueOf(c).Elem())
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// clearReplaced zeroes the maps of struct v that the mapping node sets, recursing into
// nested structs. yaml.v3 merges a mapping into a map that already has entries; zeroing
// it first makes a map the file sets replace the default one, like lists do.
func clearReplaced(node *yaml.Node, v reflect.Value) {
	if node.Kind != yaml.MappingNode || v.Kind() != reflect.Struct {
		return
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		f, ok := fieldByKey(v, node.Content[i].Value)
		if !ok {
			continue // an unknown key: the strict decode reports it
		}
		switch f.Kind() {
		case reflect.Map:
			f.Set(reflect.Zero(f.Type()))
		case reflect.Struct:
			clearReplaced(node.Content[i+1], f)
		}
	}
}

// fieldByKey returns the field of struct v whose yaml tag names key.
func fieldByKey(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}
