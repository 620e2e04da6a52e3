SELECT * FROM '{outside}/secret.csv'
