SELECT * FROM read_csv('{outside}/secret.csv')
