package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// argCheck holds one tool's input schema, compiled, to check the arguments
// of every call before the tool's handler runs. Arguments the schema does
// not accept are refused, never coerced: a string where a boolean belongs
// is not read as true or false, an argument the tool does not declare is
// not ignored.
type argCheck struct {
	tool   string
	names  []string          // declared arguments, in declaration order
	descs  map[string]string // their descriptions
	schema *jsonschema.Schema
	// retired are arguments the tool no longer takes, each with what to
	// do instead.
	retired map[string]string
}

func newArgCheck(t mcpgo.Tool, retired map[string]string) (*argCheck, error) {
	raw, err := json.Marshal(t.InputSchema)
	if err != nil {
		return nil, fmt.Errorf("input schema of %s: %w", t.Name, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("input schema of %s: %w", t.Name, err)
	}
	c := jsonschema.NewCompiler()
	loc := "mem:///claudemesh/tools/" + t.Name + ".json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, fmt.Errorf("input schema of %s: %w", t.Name, err)
	}
	schema, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("input schema of %s: %w", t.Name, err)
	}
	a := &argCheck{tool: t.Name, schema: schema, retired: retired, descs: map[string]string{}}
	a.names = t.InputSchema.PropertyOrder
	if a.names == nil {
		a.names = slices.Sorted(maps.Keys(t.InputSchema.Properties))
	}
	for name, p := range t.InputSchema.Properties {
		if p, ok := p.(map[string]any); ok {
			a.descs[name], _ = p["description"].(string)
		}
	}
	return a, nil
}

// guard returns h behind the check: a call whose arguments are refused
// gets a tool error that says why, and h does not run.
func (a *argCheck) guard(h server.ToolHandlerFunc) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
		if why := a.refusal(req.Params.Arguments); why != "" {
			return mcpgo.NewToolResultError(why), nil
		}
		return h(ctx, req)
	}
}

// refusal says what is wrong with raw, the arguments of a call, or returns
// "" when the schema accepts them.
func (a *argCheck) refusal(raw any) string {
	v, err := jsonValue(raw)
	if err != nil {
		return fmt.Sprintf("the arguments of %s are not JSON (%v); %s; nothing was done.", a.tool, err, a.takes())
	}
	args, ok := v.(map[string]any)
	if !ok {
		return fmt.Sprintf("the arguments of %s must be an object of named arguments, got %s; %s; nothing was done.", a.tool, describe(v), a.takes())
	}
	var problems []string
	for _, name := range slices.Sorted(maps.Keys(args)) {
		if instead, ok := a.retired[name]; ok {
			problems = append(problems, fmt.Sprintf("%s no longer takes `%s`: %s", a.tool, name, instead))
		}
	}
	var unknown, missing []string
	type fieldProblem struct {
		field, text string
	}
	var fields []fieldProblem
	for _, leaf := range leaves(a.schema.Validate(v)) {
		field := ""
		if len(leaf.InstanceLocation) > 0 {
			field = leaf.InstanceLocation[0]
		}
		switch k := leaf.ErrorKind.(type) {
		case *kind.AdditionalProperties:
			for _, p := range k.Properties {
				if _, ok := a.retired[p]; !ok {
					unknown = append(unknown, p)
				}
			}
		case *kind.Required:
			missing = append(missing, k.Missing...)
		case *kind.Type:
			got := k.Got
			if len(leaf.InstanceLocation) == 1 {
				got = describe(args[field])
			}
			fields = append(fields, fieldProblem{field, fmt.Sprintf("`%s` must be %s, got %s", field, typeNames(k.Want), got)})
		case *kind.MaxLength:
			// send_dm's limit is in bytes; a schema can only bound
			// characters, so the schema's bound is the byte limit.
			n := k.Got
			if s, ok := args[field].(string); ok {
				n = len(s)
			}
			fields = append(fields, fieldProblem{field, tooLong(field, n, k.Want)})
		default:
			fields = append(fields, fieldProblem{field, fmt.Sprintf("`%s` does not satisfy its schema (%s)", field, strings.Join(leaf.ErrorKind.KeywordPath(), "/"))})
		}
	}
	slices.Sort(unknown)
	slices.SortFunc(missing, a.byDeclaration)
	slices.SortStableFunc(fields, func(x, y fieldProblem) int { return a.byDeclaration(x.field, y.field) })
	if len(unknown) == 1 {
		problems = append(problems, fmt.Sprintf("unknown argument `%s`", unknown[0]))
	} else if len(unknown) > 1 {
		problems = append(problems, fmt.Sprintf("unknown arguments %s", quoteNames(unknown)))
	}
	for _, name := range missing {
		if d := a.descs[name]; d != "" {
			problems = append(problems, fmt.Sprintf("`%s` is required (%s)", name, d))
		} else {
			problems = append(problems, fmt.Sprintf("`%s` is required", name))
		}
	}
	for _, f := range fields {
		problems = append(problems, f.text)
	}
	if len(problems) == 0 {
		return ""
	}
	if len(unknown) > 0 || len(missing) > 0 {
		problems = append(problems, a.takes())
	}
	return strings.Join(problems, "; ") + "; nothing was done."
}

// byDeclaration orders argument names as the tool declares them.
func (a *argCheck) byDeclaration(x, y string) int {
	i, j := slices.Index(a.names, x), slices.Index(a.names, y)
	if i < 0 || j < 0 {
		return strings.Compare(x, y)
	}
	return i - j
}

// takes lists the tool's arguments.
func (a *argCheck) takes() string {
	if len(a.names) == 0 {
		return a.tool + " takes no arguments"
	}
	return a.tool + " takes: " + strings.Join(a.names, ", ")
}

// tooLong refuses a text argument over its limit, in bytes.
func tooLong(field string, n, limit int) string {
	return fmt.Sprintf("`%s` is %d bytes; the limit is %d bytes (%d KiB): split it into several DMs", field, n, limit, limit>>10)
}

// jsonValue turns a call's arguments into the values a JSON Schema
// validator checks: what the client sent, numbers kept exact.
func jsonValue(raw any) (any, error) {
	if raw == nil {
		return map[string]any{}, nil
	}
	b, ok := raw.(json.RawMessage)
	if !ok {
		var err error
		if b, err = json.Marshal(raw); err != nil {
			return nil, err
		}
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return map[string]any{}, nil
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(b))
}

// leaves returns the innermost causes of a validation error: each names
// one argument and one rule.
func leaves(err error) []*jsonschema.ValidationError {
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return nil
	}
	if len(verr.Causes) == 0 {
		return []*jsonschema.ValidationError{verr}
	}
	var out []*jsonschema.ValidationError
	for _, c := range verr.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// describe names the JSON type of v, with the value when it is short.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		const max = 40
		if utf8.RuneCountInString(v) > max {
			return fmt.Sprintf("a string (%q…)", string([]rune(v)[:max]))
		}
		return fmt.Sprintf("a string (%q)", v)
	case bool:
		return fmt.Sprintf("a boolean (%t)", v)
	case json.Number:
		return fmt.Sprintf("a number (%s)", v)
	case float64, int, int64:
		return fmt.Sprintf("a number (%v)", v)
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("a %T", v)
}

// typeNames renders JSON Schema type names as a phrase: "a boolean",
// "a string or null".
func typeNames(types []string) string {
	out := make([]string, len(types))
	for i, t := range types {
		switch t {
		case "null":
			out[i] = "null"
		case "integer", "object", "array":
			out[i] = "an " + t
		default:
			out[i] = "a " + t
		}
	}
	return strings.Join(out, " or ")
}

func quoteNames(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "`" + n + "`"
	}
	return strings.Join(q, ", ")
}
