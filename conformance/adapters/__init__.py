"""Adapters shipped with kadspec: one per implementation, each a program speaking the adapter
protocol on its standard input and output."""
