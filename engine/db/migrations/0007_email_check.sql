-- Every member address must be one plain `local@domain` that the mail outbox can send
-- to, the rule of `engine.accounts.is_mail_address`: at most 254 characters, exactly
-- one @, and no whitespace, control character, quote or other RFC 5322 special
-- (<>()[]\,;:"). Registration checks the same rule first, with a localized message.
-- NOTE: [[:space:]] follows the database's character classification, so it may let
-- through a non-ASCII space that the Python check (Unicode \s) rejects.
--
-- NOT VALID: rows written before this migration are not checked, so a deployment
-- that has such a row still starts. The outbox skips a mail to an address it
-- cannot send to, so such a row blocks nothing.
ALTER TABLE users ADD CONSTRAINT users_email_plain CHECK (
    char_length(email) <= 254
    AND email ~ '^[^][:space:][:cntrl:]@<>()[\\,;:"]+@[^][:space:][:cntrl:]@<>()[\\,;:"]+$'
) NOT VALID;
