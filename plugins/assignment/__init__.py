"""Built-in assignment plugins: who fulfils an approved order."""
