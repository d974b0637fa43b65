package claudecode

import (
	"bytes"
	"encoding/json"
	"testing"
)

// objectSeeds are the seed corpus of FuzzParseObject.
var objectSeeds = []string{
	`{}`,
	`{"a":1}`,
	"{\n  \"b\": [1, {\"c\": null}],\n  \"a\": \"x\"\n}\n",
	`{"dup":1,"dup":2}`,
	`{"\u00e9\"":"<&>","":{}}`,
	`{"a":1,}`,
	`{"a" 1}`,
	`[]`,
	`{"a":1} {}`,
	`"x"`,
	``,
}

func TestObjectSeeds(t *testing.T) {
	if len(objectSeeds) == 0 {
		t.Fatal("no seeds for FuzzParseObject")
	}
}

// parseObject accepts exactly the JSON documents that are objects, and
// writing one back changes nothing but its layout.
func FuzzParseObject(f *testing.F) {
	for _, s := range objectSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := parseObject(data)
		trimmed := bytes.TrimLeft(data, " \t\r\n")
		isObject := json.Valid(data) && len(trimmed) > 0 && trimmed[0] == '{'
		if (err == nil) != isObject {
			t.Fatalf("parseObject(%q): %v; valid object: %v", data, err, isObject)
		}
		if err != nil {
			return
		}
		var want, got bytes.Buffer
		if err := json.Indent(&want, bytes.TrimSpace(data), "", "  "); err != nil {
			t.Fatal(err)
		}
		if err := json.Indent(&got, o.marshal(), "", "  "); err != nil {
			t.Fatalf("marshal(%q) = %q: %v", data, o.marshal(), err)
		}
		if got.String() != want.String() {
			t.Fatalf("parseObject(%q) writes back\n%s\nwant\n%s", data, got.String(), want.String())
		}
	})
}

func TestObjectEdits(t *testing.T) {
	o, err := parseObject([]byte(`{"b": 1, "a": {"x": true}, "b": 2, "c": "\u003c"}`))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := o.get("b"); string(v) != "2" {
		t.Errorf(`get("b") = %s, want the last value 2`, v)
	}
	o.set("a", json.RawMessage(`[]`))
	o.set("d", encode("<&>"))
	o.delete("b")
	if got, want := string(o.marshal()), `{"a":[],"c":"\u003c","d":"<&>"}`; got != want {
		t.Errorf("after edits %s, want %s", got, want)
	}
	if _, ok := o.get("b"); ok || o.len() != 3 {
		t.Errorf("after delete: %s", o.marshal())
	}
}
