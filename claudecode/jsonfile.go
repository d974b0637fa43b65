package claudecode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/claudemesh/claudemesh/internal/atomicfile"
)

// object is a JSON object that keeps its members in order and each key and
// value as it was written, so that an edit changes only what it touches.
// Go maps would reorder the keys of the user's files.
type object struct {
	members []member
}

type member struct {
	rawKey []byte // the key as written, quotes included
	key    string
	value  json.RawMessage
}

// parseObject parses data, which must hold one JSON object.
func parseObject(data []byte) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(err)
	}
	if tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	o := &object{}
	for dec.More() {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("invalid JSON: object key is not a string")
		}
		raw := bytes.TrimLeft(data[start:dec.InputOffset()], " \t\r\n,")
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, syntaxError(err)
		}
		o.members = append(o.members, member{rawKey: raw, key: key, value: value})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, syntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: data after the object")
	}
	return o, nil
}

func syntaxError(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// get returns the value of key; with duplicate keys, the last one, as
// JavaScript's JSON.parse does.
func (o *object) get(key string) (json.RawMessage, bool) {
	for i := len(o.members) - 1; i >= 0; i-- {
		if o.members[i].key == key {
			return o.members[i].value, true
		}
	}
	return nil, false
}

// set replaces the value of key in place, or appends key.
func (o *object) set(key string, value json.RawMessage) {
	for i := len(o.members) - 1; i >= 0; i-- {
		if o.members[i].key == key {
			o.members[i].value = value
			return
		}
	}
	o.members = append(o.members, member{rawKey: encode(key), key: key, value: value})
}

// delete removes every member named key.
func (o *object) delete(key string) {
	kept := o.members[:0]
	for _, m := range o.members {
		if m.key != key {
			kept = append(kept, m)
		}
	}
	o.members = kept
}

func (o *object) len() int { return len(o.members) }

// marshal returns the object as compact JSON around the members' bytes.
func (o *object) marshal() json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o.members {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(m.rawKey)
		b.WriteByte(':')
		b.Write(m.value)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// field returns the member key of o as an object, a new empty one if o has
// no such member. where names the member in errors.
func (o *object) field(key, where string) (*object, error) {
	raw, ok := o.get(key)
	if !ok {
		return &object{}, nil
	}
	v, err := parseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%s is not a JSON object", where)
	}
	return v, nil
}

// parseArray returns the elements of a JSON array, each as written.
func parseArray(data json.RawMessage) ([]json.RawMessage, error) {
	if !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("[")) {
		return nil, errors.New("not a JSON array")
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(data, &elems); err != nil {
		return nil, err
	}
	return elems, nil
}

// marshalArray is the inverse of parseArray.
func marshalArray(elems []json.RawMessage) json.RawMessage {
	b := []byte("[")
	for i, e := range elems {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, ']')
}

// encode returns v as JSON, leaving <, > and & as they are (Claude Code
// writes them so).
func encode(v any) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("claudecode: encode %T: %v", v, err)) // only strings and fixed shapes are encoded
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// jsonFile is a JSON settings file of Claude Code, read for editing. The
// file need not exist yet.
type jsonFile struct {
	path    string // as named to the user
	target  string // the file written: path with symlinks resolved
	mode    fs.FileMode
	newline bool // the file ends in a newline
	root    *object

	dirty bool     // root was changed
	notes []string // what was changed or found
}

// changed records a change made to the file.
func (f *jsonFile) changed(note string) {
	f.dirty = true
	f.notes = append(f.notes, note)
}

// found records what was found and left as it was.
func (f *jsonFile) found(note string) { f.notes = append(f.notes, note) }

// readJSONFile reads path, which must hold a JSON object, is empty or does
// not exist.
func readJSONFile(path string) (*jsonFile, error) {
	f := &jsonFile{path: path, target: path, mode: 0o600, newline: true, root: &object{}}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		f.target = real
	}
	data, err := os.ReadFile(f.target)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	info, err := os.Stat(f.target)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	f.mode = info.Mode().Perm()
	if len(bytes.TrimSpace(data)) == 0 {
		return f, nil
	}
	f.newline = bytes.HasSuffix(data, []byte("\n"))
	if f.root, err = parseObject(data); err != nil {
		return nil, fmt.Errorf("read %s: %w; fix or remove the file first", path, err)
	}
	return f, nil
}

// bytes returns the file's new contents in Claude Code's layout: indented
// by two spaces, ending in a newline if the file did (or is new).
func (f *jsonFile) bytes() []byte {
	var b bytes.Buffer
	if err := json.Indent(&b, f.root.marshal(), "", "  "); err != nil {
		panic(fmt.Sprintf("claudecode: indent %s: %v", f.path, err)) // built from valid parts
	}
	if f.newline {
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// write replaces the file atomically with its new contents, keeping its
// mode (0600 for a new file) and creating missing directories with 0700.
func (f *jsonFile) write() error {
	if err := os.MkdirAll(filepath.Dir(f.target), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	if err := atomicfile.Write(f.target, f.bytes(), f.mode); err != nil {
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return nil
}
