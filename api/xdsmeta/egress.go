package xdsmeta

import "strconv"

// ExternalCluster names the cluster of an ExternalService host and port:
// "outbound|<host>:<port>", as Istio names a ServiceEntry's.
func ExternalCluster(host string, port int32) string {
	return "outbound|" + host + ":" + strconv.Itoa(int(port))
}

// ExternalCASecret names the SDS validation context holding the CA of the
// ExternalService namespace/name, for TLS the mesh originates to it.
func ExternalCASecret(namespace, name string) string { return "external-ca|" + namespace + "/" + name }
