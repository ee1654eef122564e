package decode_test

import (
	"fmt"

	"github.com/weftmesh/weft/api/decode"
)

func ExampleDocuments() {
	input := []byte(`apiVersion: weft.dev/v1alpha1
kind: Mesh
metadata:
  name: default
spec:
  trustDomain: shop.example.org
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: payments
spec:
  ports:
  - port: 9090
    protocol: grpc
`)
	objs, err := decode.Documents(input, "shop.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, obj := range objs {
		fmt.Println(obj.Ref())
	}
	// Output:
	// Mesh default
	// Service default/payments
}

func ExampleDocuments_errors() {
	input := []byte(`apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: payments
spec:
  ports:
  - port: 9090
    protocl: grpc
---
apiVersion: weft.dev/v1alpha1
kind: Service
metadata:
  name: orders
spec:
  ports:
  - port: 70000
`)
	_, err := decode.Documents(input, "shop.yaml")
	fmt.Println(err)
	// Output:
	// shop.yaml: document 1 (Service default/payments): spec.ports[0].protocl: unknown field; did you mean "protocol"? (line 8)
	// shop.yaml: document 2 (Service default/orders): spec.ports[0].port: must be between 1 and 65535 (line 16)
}
