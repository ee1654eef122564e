package v1alpha1

// WithTrafficKinds lets the external tests register the traffic kinds for a
// test only.
var WithTrafficKinds = withTrafficKinds
