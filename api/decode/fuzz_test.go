package decode

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/weftmesh/weft/api/v1alpha1"
)

// FuzzDocuments checks that Documents never panics, that an input it
// rejects gets an *Error with at least one problem, and that every object it
// accepts is valid and survives a trip through JSON, both through
// Object.UnmarshalJSON (how the store reads objects back) and through
// Documents again (how `weft get -o json` output is applied again).
func FuzzDocuments(f *testing.F) {
	for _, pattern := range []string{"testdata/*.yaml", "testdata/*.json"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("{}"))
	f.Add([]byte("---\n--- null\n"))
	f.Add([]byte(header + "  ports: [{port: 80, name: web, protocol: tcp}]\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Documents(data, "fuzz.yaml")
		if err != nil {
			var derr *Error
			if !errors.As(err, &derr) {
				t.Fatalf("error is %T, want *Error: %v", err, err)
			}
			if objs != nil || derr.problems() == 0 || err.Error() == "" {
				t.Fatalf("rejected input: %d objects, %d problems, message %q", len(objs), derr.problems(), err)
			}
			return
		}
		for i, obj := range objs {
			if errs := obj.Validate(); len(errs) > 0 {
				t.Fatalf("object %d was accepted but does not validate:\n%v", i+1, errs)
			}
			b, err := json.Marshal(obj)
			if err != nil {
				t.Fatalf("object %d: Marshal: %v", i+1, err)
			}
			var back v1alpha1.Object
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("object %d: Unmarshal(%s): %v", i+1, b, err)
			}
			if !reflect.DeepEqual(&back, obj) {
				t.Fatalf("object %d changed in a JSON round trip:\n got %#v\nwant %#v\nJSON %s", i+1, &back, obj, b)
			}
			again, err := Document(b, "fuzz.json")
			if err != nil {
				t.Fatalf("object %d: its JSON %s does not decode again: %v", i+1, b, err)
			}
			if !reflect.DeepEqual(again, obj) {
				t.Fatalf("object %d changed when its JSON was decoded again:\n got %#v\nwant %#v\nJSON %s", i+1, again, obj, b)
			}
		}
	})
}
