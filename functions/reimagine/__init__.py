"""reimagine: a photo in, an AI caption and a new picture out, by email."""
