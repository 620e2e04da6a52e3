ATTACH '{outside}/x.duckdb' AS x
