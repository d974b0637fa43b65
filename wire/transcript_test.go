package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// signed is every field some transcript signs. It is comparable, so two
// inputs are the same input exactly when their projections are ==.
type signed struct {
	challenge, mesh, session, key, name, dir, instance string
	member, sig, code                                  string
	version                                            byte
	standby, attested                                  bool
	expires                                            int64 // nanoseconds since the Unix epoch
}

// cutFields cuts content into the fields of a signed input: shape[0] is
// the version, shape[1] the flags (bit 0 standby, bit 1 attested), and
// each further byte of shape the length of the next field, as far as
// content lasts. The same content cut by another shape moves bytes from
// one field to its neighbour: the ambiguity that length prefixes exist
// to rule out. Fields may hold any bytes, zeros and prefix-like runs
// included.
func cutFields(content, shape []byte) signed {
	at := func(i int) byte {
		if i < len(shape) {
			return shape[i]
		}
		return 0
	}
	next := 2
	take := func() string {
		n := min(int(at(next)), len(content))
		next++
		f := content[:n]
		content = content[n:]
		return string(f)
	}
	s := signed{version: at(0), standby: at(1)&1 != 0, attested: at(1)&2 != 0}
	s.challenge, s.mesh, s.session, s.key = take(), take(), take(), take()
	s.name, s.dir, s.instance, s.code = take(), take(), take(), take()
	if s.attested {
		s.member, s.sig = take(), take()
		var e [8]byte
		copy(e[:], take())
		s.expires = int64(binary.BigEndian.Uint64(e[:]))
	}
	return s
}

func (s signed) attestation() *Attestation {
	if !s.attested {
		return nil
	}
	return &Attestation{Member: Key(s.member), Expires: time.Unix(0, s.expires), Sig: []byte(s.sig)}
}

// transcriptKinds are the transcripts a key signs, each with the part of
// an input it covers.
var transcriptKinds = []struct {
	name       string
	transcript func(s signed) []byte
	covers     func(s signed) signed
}{
	{
		name: "hello",
		transcript: func(s signed) []byte {
			return HelloTranscript([]byte(s.challenge), Hello{
				Version: int(s.version), Mesh: s.mesh, SessionID: s.session, Key: Key(s.key), Name: s.name,
				ProjectDir: s.dir, Instance: s.instance, Standby: s.standby, Attestation: s.attestation(),
			})
		},
		covers: func(s signed) signed {
			s.code = ""
			return s
		},
	},
	{
		name: "member hello",
		transcript: func(s signed) []byte {
			return MemberHelloTranscript([]byte(s.challenge), MemberHello{Version: int(s.version), Mesh: s.mesh, Key: Key(s.key), Name: s.name})
		},
		covers: func(s signed) signed {
			return signed{challenge: s.challenge, version: s.version, mesh: s.mesh, key: s.key, name: s.name}
		},
	},
	{
		name: "join",
		transcript: func(s signed) []byte {
			return JoinTranscript([]byte(s.challenge), Join{Version: int(s.version), Code: s.code, Key: Key(s.key), Name: s.name})
		},
		covers: func(s signed) signed {
			return signed{challenge: s.challenge, version: s.version, code: s.code, key: s.key, name: s.name}
		},
	},
	{
		name: "attestation",
		transcript: func(s signed) []byte {
			return AttestationTranscript(s.mesh, Key(s.key), time.Unix(0, s.expires))
		},
		covers: func(s signed) signed {
			return signed{mesh: s.mesh, key: s.key, expires: s.expires}
		},
	},
}

// FuzzTranscripts checks that every transcript is injective: two inputs
// that differ in a field the transcript covers never share its bytes, so
// a signature over one input never verifies for another. And transcripts
// of different kinds never coincide, so a signature for one purpose is
// never valid for another. Inputs are as the broker acts on them: the
// version is one byte (Decode refuses every version but Version), and
// expiries are int64 nanoseconds (see TestAttestationExpiryOutOfRange for
// times beyond that range).
func FuzzTranscripts(f *testing.F) {
	f.Add([]byte("challenge-of-32-bytes-0123456789teamsession-uuidkeykeykeykeykeykeykeykeykeyalice/home/alice/projinstancecm1-code"),
		[]byte{1, 3, 32, 4, 12, 32, 5, 16, 8, 10, 32, 64, 8},
		[]byte("challenge-of-32-bytes-0123456789teamsession-uuidkeykeykeykeykeykeykeykeykeyalice/home/alice/projinstancecm1-code"),
		[]byte{1, 3, 32, 5, 11, 32, 5, 16, 8, 10, 32, 64, 8})
	f.Fuzz(func(t *testing.T, contentA, shapeA, contentB, shapeB []byte) {
		inputs := []signed{cutFields(contentA, shapeA), cutFields(contentB, shapeB), cutFields(contentA, shapeB), cutFields(contentB, shapeA)}
		for i, x := range inputs {
			for _, y := range inputs[i+1:] {
				for _, k := range transcriptKinds {
					if bytes.Equal(k.transcript(x), k.transcript(y)) && k.covers(x) != k.covers(y) {
						t.Fatalf("%s transcript is the same for\n%+v\nand\n%+v", k.name, k.covers(x), k.covers(y))
					}
				}
			}
			for j, k := range transcriptKinds {
				for _, l := range transcriptKinds[j+1:] {
					if bytes.Equal(k.transcript(x), l.transcript(x)) {
						t.Fatalf("%s and %s transcripts of %+v coincide", k.name, l.name, x)
					}
				}
			}
		}
	})
}

func TestTranscriptFuzzCorpusPresent(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzTranscripts"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("seed corpus of FuzzTranscripts is missing or empty (%v)", err)
	}
}

// Outside the years 1678 to 2262 time.Time.UnixNano wraps, so an
// expiry moved by 2^64 nanoseconds (about 584 years) has the transcript
// of the original, and the member's signature verifies for it. The
// validity window is what keeps such an attestation out: it is too long
// forward and expired backward.
func TestAttestationExpiryOutOfRange(t *testing.T) {
	_, member := newTestKey(t)
	session, _ := newTestKey(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	a := Attest(member, "team", Key(session), now.Add(time.Hour))
	wrap := func(t time.Time, sign time.Duration) time.Time {
		// 2^64 ns as two maximal durations and two nanoseconds.
		return t.Add(sign * math.MaxInt64).Add(sign * math.MaxInt64).Add(sign * 2)
	}
	for _, tt := range []struct {
		name    string
		expires time.Time
		want    error
	}{
		{"forward", wrap(a.Expires, 1), ErrAttestationTooLong},
		{"backward", wrap(a.Expires, -1), ErrAttestationExpired},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.expires.UnixNano() != a.Expires.UnixNano() {
				t.Fatalf("%v does not wrap to the nanoseconds of %v: the case tests nothing", tt.expires, a.Expires)
			}
			moved := &Attestation{Member: a.Member, Expires: tt.expires, Sig: a.Sig}
			if err := moved.Verify("team", Key(session), now); !errors.Is(err, tt.want) {
				t.Errorf("Verify of the attestation moved to %v: %v, want %v", tt.expires, err, tt.want)
			}
		})
	}
}

// A checking hello signs one field more than a session's hello, so that
// neither signature verifies as the other.
func TestCheckingHelloTranscriptDiffers(t *testing.T) {
	h := Hello{Version: Version, Mesh: "m", Key: make(Key, KeySize), Name: "n"}
	c := h
	c.Check = true
	challenge := make([]byte, ChallengeSize)
	if bytes.Equal(HelloTranscript(challenge, h), HelloTranscript(challenge, c)) {
		t.Error("a checking hello signs the same transcript as a session's hello")
	}
}
