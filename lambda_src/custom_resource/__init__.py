"""What the project's custom-resource functions (the reconciler, the traffic gate) share."""
