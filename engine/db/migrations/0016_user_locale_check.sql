-- The language of a member's pages and mails: Korean ('ko', the default) or English
-- ('en'). Registration stores the page's language, the account page changes it, and
-- every transactional mail is written in it. Rows with another value, which nothing
-- in the application writes, fall back to Korean before the constraint is added.
UPDATE users SET locale = 'ko' WHERE locale NOT IN ('ko', 'en');
ALTER TABLE users ADD CONSTRAINT users_locale_known CHECK (locale IN ('ko', 'en'));
