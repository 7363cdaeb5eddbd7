"""Run the SAM application on one machine: the template's wiring, read from template.yaml, delivered
to the functions, each in its own Lambda-like execution environments (or all in this process), over
an AWS endpoint (moto's server, LocalStack or a real account)."""
