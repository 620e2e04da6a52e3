COPY (SELECT 1) TO '{lake}/evil.csv'
