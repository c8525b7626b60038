// Package config reads config.toml, the settings users make once, onto the
// flags they stand for. The keys are the flags' own names with "-" as "_",
// in a table per flag set (serve's flags in [serve]), so a new flag is
// configurable without code here. Precedence: a flag's default < the file <
// its environment variable, where it has one < the flag given on the command
// line.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
	"github.com/spf13/pflag"
)

// FileName is the name of the file in the configuration directory.
const FileName = "config.toml"

// Errors that Error wraps, for callers that branch on them.
var (
	ErrUnknownKey = errors.New("unknown key")
	ErrBadValue   = errors.New("bad value")
	ErrSyntax     = errors.New("not valid TOML")
)

// Error is a fault in the file, at a line, for a key (empty for a syntax
// error). It prints on one line: FILE:LINE: KEY: what is wrong.
type Error struct {
	File string
	Line int
	Key  string
	Err  error
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s:%d: %s: %v", e.File, e.Line, e.Key, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Table is a flag set whose flags the file sets: at the top level when Name is
// "", else in the table [Name]. Env names the environment variable of a flag
// (by flag name) where it has one.
type Table struct {
	Name  string
	Flags *pflag.FlagSet
	Env   map[string]string
	// Skip are flag names that are not settings (help, the --config flag).
	Skip []string
}

// Setting is one effective setting and where its value came from.
type Setting struct {
	Key    string // as the file writes it: table.name, "-" as "_"
	Value  string
	Source string // default, file PATH:LINE, env NAME, or flag
}

// Apply reads the file at path onto the tables' flags and returns every
// setting with its source, in table order. A flag given on the command line
// (Changed) keeps its value; otherwise its environment variable, if set,
// wins over the file. A missing file is no error unless required. An unknown
// key, a bad value or bad TOML is an *Error naming the file, the line and the
// key; then no flag has been changed.
func Apply(path string, required bool, tables []Table, getenv func(string) string) ([]Setting, error) {
	values, lines, err := read(path, required)
	if err != nil {
		return nil, err
	}
	type target struct {
		t *Table
		f *pflag.Flag
	}
	known := map[string]target{}
	for i := range tables {
		t := &tables[i]
		t.Flags.VisitAll(func(f *pflag.Flag) {
			if !slices.Contains(t.Skip, f.Name) && f.Name != "help" {
				known[keyOf(t.Name, f.Name)] = target{t, f}
			}
		})
	}
	// Every key must be a setting before any flag changes.
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return lines.of(a) - lines.of(b) })
	for _, k := range keys {
		if _, ok := known[k]; !ok {
			return nil, &Error{File: path, Line: lines.of(k), Key: k, Err: ErrUnknownKey}
		}
	}

	var out []Setting
	type pending struct {
		f    *pflag.Flag
		vals []string
		key  string
	}
	var sets []pending
	for i := range tables {
		t := &tables[i]
		var err error
		t.Flags.VisitAll(func(f *pflag.Flag) {
			k := keyOf(t.Name, f.Name)
			if _, ok := known[k]; !ok || err != nil {
				return
			}
			s := Setting{Key: k, Source: "default"}
			env := t.Env[f.Name]
			switch v, inFile := values[k]; {
			case f.Changed:
				s.Source = "flag"
			case env != "" && getenv(env) != "":
				s.Source = "env " + env
				sets = append(sets, pending{f, []string{getenv(env)}, k})
			case inFile:
				vals, verr := flagStrings(f, v)
				if verr == nil {
					verr = check(f, vals)
				}
				if verr != nil {
					err = &Error{File: path, Line: lines.of(k), Key: k, Err: fmt.Errorf("%w %s: %w", ErrBadValue, describe(v), verr)}
					return
				}
				s.Source = fmt.Sprintf("file %s:%d", path, lines.of(k))
				sets = append(sets, pending{f, vals, k})
			}
			out = append(out, s)
		})
		if err != nil {
			return nil, err
		}
	}
	for _, p := range sets {
		if err := set(p.f, p.vals); err != nil {
			return nil, fmt.Errorf("%s: %w", p.key, err) // an environment value: checked by the flag's own Set
		}
	}
	for i := range out {
		f := known[out[i].Key].f
		out[i].Value = show(f)
	}
	return out, nil
}

// keyOf is the file's key of a flag.
func keyOf(table, flag string) string {
	k := strings.ReplaceAll(flag, "-", "_")
	if table != "" {
		k = table + "." + k
	}
	return k
}

// show is a flag's value as config show prints it.
func show(f *pflag.Flag) string {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return strings.Join(sv.GetSlice(), ",")
	}
	return f.Value.String()
}

// flagStrings turns a TOML value into what the flag's Set takes: one string
// for a scalar, one per element of an array for a list flag.
func flagStrings(f *pflag.Flag, v any) ([]string, error) {
	if arr, ok := v.([]any); ok {
		if _, list := f.Value.(pflag.SliceValue); !list {
			return nil, errors.New("want a single value, not a list")
		}
		out := make([]string, 0, len(arr))
		for _, e := range arr {
			s, err := scalar(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := scalar(v)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	}
	return "", fmt.Errorf("want a string, number or boolean, not %T", v)
}

// describe quotes a value from the file for an error line.
func describe(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// check tries vals on a copy of the flag's value where it can, so that a bad
// value is found before any flag changes: a fresh FlagSet with the same kind
// of value is made by re-setting the current one and restoring it.
func check(f *pflag.Flag, vals []string) error {
	old := show(f)
	oldVals := []string{old}
	sv, isList := f.Value.(pflag.SliceValue)
	if isList {
		oldVals = slices.Clone(sv.GetSlice())
	}
	err := setValue(f.Value, vals)
	// Put the old value back: set applies it for good once every key passed.
	if isList {
		_ = sv.Replace(oldVals)
	} else {
		_ = f.Value.Set(old)
	}
	return err
}

func setValue(v pflag.Value, vals []string) error {
	if sv, ok := v.(pflag.SliceValue); ok {
		return sv.Replace(vals)
	}
	return v.Set(vals[0])
}

// set gives a flag its value from the file or the environment, and marks it
// set, as the command line would: code that asks whether a flag was given
// (serve --inactive-after sets the store's policy) sees it.
func set(f *pflag.Flag, vals []string) error {
	if _, ok := f.Value.(pflag.SliceValue); ok && len(vals) == 1 {
		// One string from the environment: the flag's own list syntax.
		if err := f.Value.Set(vals[0]); err != nil {
			return err
		}
	} else if err := setValue(f.Value, vals); err != nil {
		return err
	}
	f.Changed = true
	return nil
}

// lineIndex maps each key of the file to the line it is written on.
type lineIndex map[string]int

// of is the line of key, or of the nearest table above it that has one.
func (l lineIndex) of(key string) int {
	for {
		if n, ok := l[key]; ok {
			return n
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			return 1
		}
		key = key[:i]
	}
}

// read parses the file into its leaf values by dotted key, with their lines.
func read(path string, required bool) (map[string]any, lineIndex, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if !required && errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil
		}
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, _ := de.Position()
			key := strings.Join(de.Key(), ".")
			return nil, nil, &Error{File: path, Line: row, Key: key, Err: fmt.Errorf("%w: %s", ErrSyntax, de.Error())}
		}
		return nil, nil, &Error{File: path, Line: 1, Err: fmt.Errorf("%w: %w", ErrSyntax, err)}
	}
	values := map[string]any{}
	flatten("", doc, values)
	return values, lines(data), nil
}

// flatten puts the leaves of m into out by dotted key. Only tables are walked
// into; an array is a leaf (a list setting).
func flatten(prefix string, m map[string]any, out map[string]any) {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			flatten(key, sub, out)
			continue
		}
		out[key] = v
	}
}

// lines finds the line of every key and table header of a document that
// toml.Unmarshal has accepted.
func lines(data []byte) lineIndex {
	idx := lineIndex{}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = table[:0]
			first := 0
			for it := e.Key(); it.Next(); {
				n := it.Node()
				if first == 0 {
					first = p.Shape(n.Raw).Start.Line
				}
				table = append(table, string(n.Data))
				if _, ok := idx[strings.Join(table, ".")]; !ok {
					idx[strings.Join(table, ".")] = first
				}
			}
		case unstable.KeyValue:
			parts := slices.Clone(table)
			line := 0
			for it := e.Key(); it.Next(); {
				n := it.Node()
				if line == 0 {
					line = p.Shape(n.Raw).Start.Line
				}
				parts = append(parts, string(n.Data))
				if _, ok := idx[strings.Join(parts, ".")]; !ok {
					idx[strings.Join(parts, ".")] = line
				}
			}
		}
	}
	return idx
}
