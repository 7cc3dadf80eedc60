"""Training pipeline: synthetic churn data, fitting, evaluation and versioned artifacts."""
