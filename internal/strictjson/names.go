package strictjson

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
)

var namesCache sync.Map // reflect.Type -> map[string]bool

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// fieldNames returns the JSON names of every struct field reachable from t,
// or nil when t reaches a map or an interface, whose keys can be anything.
func fieldNames(t reflect.Type) map[string]bool {
	if t == nil {
		return nil
	}
	if cached, ok := namesCache.Load(t); ok {
		return cached.(map[string]bool)
	}
	names := map[string]bool{}
	if !collectNames(t, names, map[reflect.Type]bool{}) {
		names = nil
	}
	namesCache.Store(t, names)
	return names
}

func collectNames(t reflect.Type, names map[string]bool, seen map[reflect.Type]bool) bool {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	if t.Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(jsonUnmarshaler) ||
		t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) {
		return true // decodes itself from a string or number (time.Time, digests)
	}
	switch t.Kind() {
	case reflect.Map, reflect.Interface:
		return false
	case reflect.Struct:
		if seen[t] {
			return true
		}
		seen[t] = true
		for i := range t.NumField() {
			if !collectField(t.Field(i), names, seen) {
				return false
			}
		}
	}
	return true
}

func collectField(f reflect.StructField, names map[string]bool, seen map[reflect.Type]bool) bool {
	tag := f.Tag.Get("json")
	if tag == "-" || (!f.IsExported() && !f.Anonymous) {
		return true
	}
	name, _, _ := strings.Cut(tag, ",")
	if name == "" && !f.Anonymous {
		name = f.Name
	}
	if name != "" {
		names[name] = true
	}
	return collectNames(f.Type, names, seen)
}
