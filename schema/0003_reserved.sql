-- Empty: number 0003 belongs to another change; this file goes when that one lands.
SELECT 1;
