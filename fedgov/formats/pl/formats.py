# "E" is the month's genitive, as Polish dates are written ("7 grudnia 2026").
DATE_FORMAT = "j E Y"
DATETIME_FORMAT = "j E Y, H:i T"
TIME_FORMAT = "H:i T"
SHORT_DATE_FORMAT = "d.m.Y"
SHORT_DATETIME_FORMAT = "d.m.Y H:i T"
