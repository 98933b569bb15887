-- title: Attribute filter: French women aged 25-34 who accept e-mail, in five big cities
SELECT profile_id, email, first_name, city
FROM profiles
WHERE country = 'FR'
  AND gender = 'F'
  AND birth_year BETWEEN 1992 AND 2001
  AND consent_email
  AND city IN ('Paris', 'Lyon', 'Marseille', 'Toulouse', 'Bordeaux');
