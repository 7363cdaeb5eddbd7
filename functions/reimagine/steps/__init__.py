"""The pipeline's steps, one module per handler of the same name in `reimagine.handlers`: the logic each
function runs, over models and injected clients, with no event or HTTP concerns. `claims` is what the
event-driven steps share (claim the record, do the work, move it on or end it)."""
