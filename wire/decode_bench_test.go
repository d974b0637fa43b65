package wire

import (
	"crypto/rand"
	"testing"
)

func BenchmarkDecodeSend(b *testing.B) {
	to, nonce, box := make([]byte, 32), make([]byte, NonceSize), make([]byte, 400)
	rand.Read(to)
	rand.Read(box)
	data, err := Encode(Send{ID: "0b5e4b0e-6b8e-4a8a-9d0c-2d3b8a6f1e2c", To: to, Nonce: nonce, Box: box})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
