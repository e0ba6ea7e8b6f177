package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// envName is the environment variable for a key path: ORDERSYNC_ + upper snake case.
func envName(path []string) string {
	r := strings.NewReplacer("-", "_", ".", "_")
	return envPrefix + strings.ToUpper(r.Replace(strings.Join(path, "_")))
}

// envKeys maps every environment variable that can set a key of cfg to the key's path. Channel
// variables exist for every channel id present in cfg.Channels.
func envKeys(cfg *Config) (map[string][]string, error) {
	keys := make(map[string][]string)
	var walk func(path []string, t reflect.Type)
	walk = func(path []string, t reflect.Type) {
		if t.Kind() == reflect.Struct && t != durationType {
			for i := range t.NumField() {
				walk(append(slices.Clone(path), tagName(t.Field(i))), t.Field(i).Type)
			}
			return
		}
		if t.Kind() == reflect.Map {
			return // channels: below
		}
		keys[envName(path)] = path
	}
	walk(nil, reflect.TypeFor[Config]())
	ids := make([]string, 0, len(cfg.Channels))
	for id := range cfg.Channels {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	chType := reflect.TypeFor[Channel]()
	for _, id := range ids {
		for i := range chType.NumField() {
			path := []string{"channels", id, tagName(chType.Field(i))}
			name := envName(path)
			if prev, ok := keys[name]; ok {
				return nil, fmt.Errorf("channels.%s: channel id collides with %s in variable %s", id, strings.Join(prev[:2], "."), name)
			}
			keys[name] = path
		}
	}
	return keys, nil
}

// applyEnv applies the ORDERSYNC_* variables of environ to cfg. Every error is reported, sorted by name.
func applyEnv(cfg *Config, environ []string) error {
	vars := make(map[string]string)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(name, envPrefix) {
			vars[name] = value // the last one wins, as in the process environment
		}
	}
	if len(vars) == 0 {
		return nil
	}
	keys, err := envKeys(cfg)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		path, ok := keys[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: unknown configuration variable", name))
			continue
		}
		if err := setPath(reflect.ValueOf(cfg).Elem(), path, vars[name]); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", name, strings.Join(path, "."), err))
		}
	}
	return errors.Join(errs...)
}

// setPath sets the key at path below v from its environment representation.
func setPath(v reflect.Value, path []string, raw string) error {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() != durationType {
			idx, _ := fieldByKey(v.Type(), path[0])
			return setPath(v.Field(idx), path[1:], raw)
		}
	case reflect.Map:
		mk := reflect.ValueOf(path[0])
		elem := reflect.New(v.Type().Elem()).Elem()
		elem.Set(v.MapIndex(mk))
		if err := setPath(elem, path[1:], raw); err != nil {
			return err
		}
		v.SetMapIndex(mk, elem)
		return nil
	}
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("invalid duration %q", raw)
		}
		v.SetInt(int64(d))
	case v.Type() == secretType:
		v.SetString(raw)
	case v.Kind() == reflect.String:
		v.SetString(raw)
	case v.Kind() == reflect.Slice:
		var out []string
		for item := range strings.SplitSeq(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		v.Set(reflect.ValueOf(out))
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("must be true or false, got %q", raw)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		i, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || v.OverflowInt(i) {
			return fmt.Errorf("must be an integer, got %q", raw)
		}
		v.SetInt(i)
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("must be a number, got %q", raw)
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("unsupported configuration type %s", v.Type()) // a bug in Config
	}
	return nil
}

// Environ renders every key of cfg as the ORDERSYNC_* variables that set it (secrets in clear,
// empty strings left out): Load("", Environ(cfg)) gives cfg back. It configures a worker run as a
// child process, as the tests and the chaos soak do.
func Environ(cfg Config) []string {
	if cfg.Top.AppSecretFile != "" {
		cfg.Top.AppSecret = "" // Load reads it from the file
	}
	var env []string
	var walk func(path []string, v reflect.Value)
	walk = func(path []string, v reflect.Value) {
		switch {
		case v.Type() == durationType:
			env = append(env, envName(path)+"="+time.Duration(v.Int()).String())
		case v.Kind() == reflect.Struct:
			for i := range v.NumField() {
				walk(append(slices.Clone(path), tagName(v.Type().Field(i))), v.Field(i))
			}
		case v.Kind() == reflect.Map:
			for _, k := range v.MapKeys() {
				walk(append(slices.Clone(path), k.String()), v.MapIndex(k))
			}
		case v.Kind() == reflect.Slice:
			items := make([]string, v.Len())
			for i := range items {
				items[i] = v.Index(i).String()
			}
			env = append(env, envName(path)+"="+strings.Join(items, ","))
		case v.Kind() == reflect.Bool:
			env = append(env, envName(path)+"="+strconv.FormatBool(v.Bool()))
		case v.Kind() == reflect.Int:
			env = append(env, envName(path)+"="+strconv.FormatInt(v.Int(), 10))
		case v.Kind() == reflect.Float64:
			env = append(env, envName(path)+"="+strconv.FormatFloat(v.Float(), 'g', -1, 64))
		case v.Kind() == reflect.String:
			if v.String() != "" {
				env = append(env, envName(path)+"="+v.String())
			}
		}
	}
	walk(nil, reflect.ValueOf(cfg))
	sort.Strings(env)
	return env
}
