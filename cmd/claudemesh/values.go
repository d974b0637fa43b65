package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Flag values that refuse what is out of range instead of leaving a
// default in place: the flag package reports the refusal as
// `invalid value "0" for flag -ttl: want ...`, one line naming the flag
// and what it accepts.

// day is the unit "d" of durationValue.
const day = 24 * time.Hour

// durationExamples ends the refusal of a duration flag.
const durationExamples = "such as 90s, 10m, 36h, 7d or 1d12h"

// parseDuration parses a Go duration ("90s", "1h30m") that may start with
// a whole number of days ("7d", "1d12h").
func parseDuration(s string) (time.Duration, error) {
	sign, rest := time.Duration(1), s
	if r, ok := strings.CutPrefix(rest, "-"); ok {
		sign, rest = -1, r
	} else {
		rest = strings.TrimPrefix(rest, "+")
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	if i == 0 || i == len(rest) || rest[i] != 'd' {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("not a duration: %q", s)
		}
		return d, nil
	}
	days, err := strconv.ParseInt(rest[:i], 10, 64)
	if err != nil || days > math.MaxInt64/int64(day) {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	d := time.Duration(days) * day
	if rest = rest[i+1:]; rest != "" {
		if rest[0] == '-' || rest[0] == '+' {
			return 0, fmt.Errorf("not a duration: %q", s)
		}
		more, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("not a duration: %q", s)
		}
		if more > math.MaxInt64-d {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		d += more
	}
	return sign * d, nil
}

// formatDuration writes d the way parseDuration reads it, as short as it
// goes: 168h is "7d", 36h "1d12h", 90s "1m30s".
func formatDuration(d time.Duration) string {
	if d < 0 {
		return "-" + formatDuration(-d)
	}
	s := ""
	if days := d / day; days > 0 {
		s = strconv.FormatInt(int64(days), 10) + "d"
		if d %= day; d == 0 {
			return s
		}
	}
	rest := d.String()
	if strings.HasSuffix(rest, "m0s") {
		rest = strings.TrimSuffix(rest, "0s")
	}
	if strings.HasSuffix(rest, "h0m") {
		rest = strings.TrimSuffix(rest, "0m")
	}
	return s + rest
}

// durationValue is a duration flag that also takes days and must lie
// within [min, max].
type durationValue struct {
	p        *time.Duration
	min, max time.Duration
}

// durationVar defines a duration flag with default def.
func durationVar(fs *flag.FlagSet, p *time.Duration, name string, def, min, max time.Duration, usage string) {
	*p = def
	fs.Var(&durationValue{p: p, min: min, max: max}, name, usage)
}

func (v *durationValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return formatDuration(*v.p)
}

func (v *durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil || d < v.min || d > v.max {
		return fmt.Errorf("want a duration from %s to %s, %s", formatDuration(v.min), formatDuration(v.max), durationExamples)
	}
	*v.p = d
	return nil
}

func (v *durationValue) argName() string { return "DURATION" }

// number is what numberValue holds.
type number interface{ int | int32 | int64 | float64 }

// numberValue is a numeric flag that must lie within [min, max]; what
// describes the range in a refusal ("a whole number from 1 to 1000").
type numberValue[T number] struct {
	p        *T
	min, max T
	what     string
}

// numberVar defines a numeric flag with default def. The range is
// written into refusals as the numbers themselves unless unit names
// them better (e.g. "bytes, 512 KiB to 1 MiB").
func numberVar[T number](fs *flag.FlagSet, p *T, name string, def, min, max T, unit, usage string) {
	*p = def
	what := "a number"
	if _, real := any(def).(float64); !real {
		what = "a whole number"
	}
	if max == maxOf[T]() {
		what += " of at least " + formatNumber(min)
	} else {
		what += " from " + formatNumber(min) + " to " + formatNumber(max)
	}
	if unit != "" {
		what += " " + unit
	}
	fs.Var(&numberValue[T]{p: p, min: min, max: max, what: what}, name, usage)
}

// maxOf is the largest value of T, which numberVar takes as no bound.
func maxOf[T number]() T {
	var v T
	switch p := any(&v).(type) {
	case *int:
		*p = math.MaxInt
	case *int32:
		*p = math.MaxInt32
	case *int64:
		*p = math.MaxInt64
	case *float64:
		*p = math.MaxFloat64
	}
	return v
}

func formatNumber[T number](v T) string {
	if f, ok := any(v).(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

func (v *numberValue[T]) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return formatNumber(*v.p)
}

func (v *numberValue[T]) Set(s string) error {
	var n T
	var err error
	switch p := any(&n).(type) {
	case *int:
		*p, err = strconv.Atoi(s)
	case *int32:
		var n64 int64
		n64, err = strconv.ParseInt(s, 10, 32)
		*p = int32(n64)
	case *int64:
		*p, err = strconv.ParseInt(s, 10, 64)
	case *float64:
		*p, err = strconv.ParseFloat(s, 64)
	}
	// Written so that NaN, which compares false to everything, is refused.
	if err != nil || !(n >= v.min && n <= v.max) {
		return errors.New("want " + v.what)
	}
	*v.p = n
	return nil
}

func (v *numberValue[T]) argName() string { return "N" }

// choiceValue is a flag whose value is one of a few words, in any case.
type choiceValue struct {
	p       *string
	choices []string
}

// choiceVar defines a flag that takes one of choices, with default def
// ("" for none).
func choiceVar(fs *flag.FlagSet, p *string, name, def string, choices []string, usage string) {
	*p = def
	fs.Var(&choiceValue{p: p, choices: choices}, name, usage)
}

func (v *choiceValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return *v.p
}

func (v *choiceValue) Set(s string) error {
	for _, c := range v.choices {
		if strings.EqualFold(s, c) {
			*v.p = c
			return nil
		}
	}
	return errors.New("want " + strings.Join(v.choices, " or "))
}

func (v *choiceValue) argName() string { return strings.Join(v.choices, "|") }
