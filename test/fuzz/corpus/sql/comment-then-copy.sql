-- a comment hides nothing
SELECT 1 /* ; */ ; COPY readings TO '{outside}/out.csv'
