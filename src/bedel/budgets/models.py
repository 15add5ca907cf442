from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from bedel.db import Base


class TokenUsage(Base):
    """Tokens the model reported, per student and UTC day ("2026-12-05", the phone) and for the
    whole institution per UTC month ("2026-12", "*"): what the budgets are checked against."""

    __tablename__ = "token_usage"

    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    subject: Mapped[str] = mapped_column(String(16), primary_key=True)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
