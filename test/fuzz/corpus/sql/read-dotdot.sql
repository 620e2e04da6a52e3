SELECT * FROM read_text('{lake}/../outside/secret.csv')
